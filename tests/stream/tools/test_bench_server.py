"""``emo-bench --server-calls``: live calls through a real ``emo-stream serve`` from sender processes, against the
same calls in-process. Only the shape and sanity of the figures are checked, never their size (shared machine)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_server_mode_compares_live_calls_with_in_process_replay(tmp_path):
    out = tmp_path / "bench"
    p = subprocess.run([sys.executable, "-m", "emostream.stream.tools.bench.cli", "--quick", "--server-calls", "1",
                        "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "### Live calls over the network vs in-process replay" in p.stdout
    result = json.loads((out / "server.json").read_text())
    assert (out / "server.md").read_text() in p.stdout
    assert (out / "server.png").read_bytes().startswith(b"\x89PNG")
    assert [d["name"] for d in result["dialogues"]] == ["call_center_short_phone"]
    for side in ("in_process", "server"):
        (row,) = result[side]
        assert row["streams"] == 1 and row["all_finals"] and row["matched"] == row["turns"] == 2, (side, row)
        assert 0 < row["live_ms"]["50"] <= row["live_ms"]["95"], (side, row)
        assert 0 < row["final_ms"]["50"] <= row["final_ms"]["95"], (side, row)
        assert 0.0 <= row["wer"] <= 0.6
    server = result["server"][0]
    assert server["kept_up"] == (server["all_finals"] and server["live_ms"]["95"] <= 1500.0)
    assert "Most real-time calls kept up: in-process " in p.stdout and "Load average" in p.stdout
