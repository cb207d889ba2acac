"""docs/service.md's curl examples, run as they are written (bash, curl, jq) against the
route-test service on loopback: each command must succeed with a 2xx (``curl
--fail-with-body``). The fake catalogue's categories are renamed after Fashion-MNIST's for
this run, so the examples' names (``Sneaker``, ``ankle boot``) are known categories."""

from __future__ import annotations

import shutil
import subprocess

import pytest

import tests.support.service as support
from tests.support.builders import REPO
from tests.support.markdown import code_blocks, section
from tests.support.server import Server

DOC = REPO / "docs" / "service.md"
DEMO_URL = "http://127.0.0.1:8000"

pytestmark = pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("jq") and shutil.which("bash")),
    reason="needs bash, curl and jq",
)


def examples() -> str:
    """The first bash block under '## Examples'."""
    return code_blocks(section(DOC.read_text(), "## Examples"), ("bash",))[0]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(support, "CATEGORIES", {0: "Sneaker", 1: "Ankle boot", 2: "Bag"})
        home = tmp_path_factory.mktemp("docs-examples") / "home"
        live = support.similar_live()
        # the examples take a random item and fetch its photo: every item has one here
        live.photos[support.NO_IMAGE] = support.item_png(support.NO_IMAGE)
        app = support.route_app(
            support.service_settings(home), live=live, shopper=support.shopper_live()
        )
        with Server(app) as s:
            yield s


def test_the_examples_name_the_demo_address_and_use_every_route():
    block = examples()
    assert block.startswith(f"API={DEMO_URL}\n")
    for route in ("/v1/categories", "/similar?", "/v1/similar", "category=Sneaker", "-F photo=@"):
        assert route in block, route


def test_every_example_runs(server, tmp_path):
    script = examples().replace(DEMO_URL, server.url, 1)
    preamble = 'set -euo pipefail\ncurl() { command curl --fail-with-body "$@"; }\nset -x\n'
    done = subprocess.run(
        ["bash", "-c", preamble + script],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "LOOKALIKE_SERVE_ADMIN_TOKEN": support.TOKEN},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / "shoe.png").read_bytes()[:4] == b"\x89PNG"
    assert '"name":"Sneaker"' in done.stdout and '"category_name":"Ankle boot"' in done.stdout
    assert '"user_id":"u0042"' in done.stdout and '"action":"unchanged"' in done.stdout
