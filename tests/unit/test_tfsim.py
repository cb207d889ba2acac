"""TensorFlow Similarity imports without its plotting helpers, which still load on use."""

import subprocess
import sys

CHECK = """
import sys
from lookalike.similarity.tfsim import import_tfsim
tfsim = import_tfsim()
assert tfsim.losses.MultiSimilarityLoss and tfsim.samplers.MultiShotMemorySampler
heavy = [m for m in ("umap", "bokeh", "matplotlib") if m in sys.modules]
assert not heavy, heavy
assert callable(tfsim.visualization.projector)  # loads the real subpackage on first use
assert "umap" in sys.modules
print("ok")
"""


def test_tfsim_imports_without_umap_bokeh_or_matplotlib_until_asked():
    run = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-3000:]
