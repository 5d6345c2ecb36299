"""OutputText, below the end-to-end stop-string tests: UTF-8 split across tokens, and text held
back while it might still become a stop string."""

from offgrid.engine.sampling import OutputText


def feed_all(output: OutputText, pieces: list[bytes]) -> list[str]:
    return [output.feed(piece) for piece in pieces]


def test_a_character_split_across_tokens_comes_out_whole():
    output = OutputText([])
    snowman = "☃".encode()
    assert feed_all(output, [b"a" + snowman[:1], snowman[1:2], snowman[2:] + b"b"]) == [
        "a", "", "☃b"]
    assert output.flush() == ""


def test_a_stop_string_split_across_tokens_is_never_released():
    output = OutputText(["END"])
    assert feed_all(output, [b"one E", b"N", b"D two"]) == ["one ", "", ""]
    assert output.stopped


def test_held_text_is_released_when_it_stops_matching():
    output = OutputText(["END"])
    assert feed_all(output, [b"one EN", b"X"]) == ["one ", "ENX"]
    assert not output.stopped


def test_held_text_is_released_at_the_end():
    output = OutputText(["END"])
    assert feed_all(output, [b"one E"]) == ["one "]
    assert output.flush() == "E"


def test_the_earliest_of_several_stop_strings_wins():
    output = OutputText(["world", "lo w"])
    assert output.feed(b"hello world") == "hel"
    assert output.stopped


def test_an_invalid_byte_becomes_a_replacement_character():
    output = OutputText([])
    assert output.feed(b"ok\xff") == "ok\ufffd"
