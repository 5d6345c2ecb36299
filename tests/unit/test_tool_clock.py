"""The current_time tool: now, with its weekday, in the server's or a named time zone, and an
answer on a machine without a time zone database."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from support.builtin_tools import call, refused
from support.cli import child_env


def test_the_time_is_now_with_its_weekday():
    before = datetime.now().astimezone()
    text = call("current_time").text
    moment = datetime.fromisoformat(text.split(",")[0])
    assert moment.tzinfo is not None
    assert abs((moment - before).total_seconds()) < 120
    assert f"{moment:%A}" in text and "this machine's time zone" in text


@pytest.mark.parametrize("zone", ["Europe/Paris", "America/New_York", "Asia/Kolkata", "UTC"])
def test_the_time_in_a_named_zone(zone):
    result = call("current_time", timezone=zone)
    assert not result.is_error, result
    moment = datetime.fromisoformat(result.text.split(",")[0])
    assert moment.utcoffset() == moment.astimezone(ZoneInfo(zone)).utcoffset()
    assert f"{moment:%A}" in result.text and zone in result.text


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "../../etc/passwd", "/etc/localtime"])
def test_an_unknown_zone_is_refused_with_examples(zone):
    refused(call("current_time", timezone=zone), "Unknown time zone", "Europe/Paris")


def test_a_machine_without_a_time_zone_database_still_answers(tmp_path):
    try:
        import tzdata  # noqa: F401  (the package would stand in for the system's database)
        pytest.skip("the tzdata package is installed")
    except ImportError:
        pass
    program = ("from pathlib import Path\n"
               "from offgrid.agents.builtin.clock import CurrentTime\n"
               "from offgrid.agents.tools import ToolContext\n"
               "for zone in ('Europe/Paris', 'UTC'):\n"
               "    r = CurrentTime().call({'timezone': zone}, ToolContext(Path('.'), None))\n"
               "    print(r.is_error, r.text)\n")
    empty = tmp_path / "no-zones"
    empty.mkdir()
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          env=child_env(PYTHONTZPATH=str(empty)), timeout=60)
    paris, utc = done.stdout.splitlines()
    assert paris.startswith("True This machine has no time zone database"), done
    assert "UTC is now" in paris
    assert utc.startswith("False ") and utc.endswith(", UTC")
