"""The soak benchmark's short form: clients that chat, stream, hang up and attack at once, then
the checks that nothing broke, leaked or went uncharged (benchmarks/soak.py says which)."""

import json
import subprocess
import sys

from support import ROOT


def test_a_short_soak_passes_every_check(model_files):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "soak.py"),
                             "--seconds", "20", "--clients", "8"],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["passed"], report
    assert report["failures"] == 0 and not report["leaked"] and not report["restarted"]
    assert report["charged_tokens"] == report["engine_tokens"] > 0
    kinds = report["by_kind"]
    assert kinds.get("attack") and kinds.get("hang_up", 0) + kinds.get("hang_up_early", 0)
