"""The distribution installs as one namespace, ``emostream``, and its console script runs from anywhere."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

from tests import REPO_ROOT


def test_wheel_installs_into_a_fresh_venv_and_runs(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
                    str(REPO_ROOT)], check=True, capture_output=True)
    (wheel,) = dist.glob("emo_stream-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"emostream", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}, top
    assert "emostream/models/bundles/default/bundle.json" in names
    assert "emostream/stream/schemas/emotion.schema.json" in names

    env_dir = tmp_path / "fresh"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    site = Path(subprocess.check_output([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, capture_output=True)
    # Dependencies come from the test environment, appended after the fresh venv's own site-packages (so
    # emostream itself comes from the wheel); installing torch again would cost minutes and gigabytes.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    script = env_dir / "bin" / "emo-stream"
    where = subprocess.check_output([py, "-c", "import emostream.stream, emostream.models, emostream.training;"
                                     "print(emostream.stream.__file__)"], text=True, cwd=tmp_path)
    assert where.startswith(str(site)), where
    assert not (site / "models").exists() and not (site / "training").exists() and not (site / "stream").exists()
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "--replay" in out.stdout
