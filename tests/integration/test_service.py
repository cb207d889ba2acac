"""The recommendation service as a real HTTP server on loopback, against a real MLflow
registry with real bundle versions: routes, bad input, auth, hot swap, refused versions.

The expensive set-up happens once per module: ``home`` ingests the catalogue, trains an
encoder, promotes bundle version 1 and registers shopper model version 1; ``server`` serves
them; ``new_version`` ingests a photo drop, updates the index and publishes the result (the
swap). A test that depends on which version is live says so with a fixture that puts that
version live, so the tests pass in any order (in file order the bundle alias moves only once):

- ``bundle_v1``: similarity bundle version 1 (before the swap) is production and served;
- ``bundle_v2``: the new catalogue version's bundle (after the swap) is production and served;
- ``shopper_v1``: shopper model version 1 is production and served;
- ``shopper_v2``: a second shopper model version is trained and made production for one test,
  then production moves back to version 1.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest
from PIL import Image

from lookalike.similarity.config import TrainConfig
from tests.support.builders import TINY_TRAIN, make_shopper_model
from tests.support.images import png_declaring
from tests.support.server import Server, wait_for

# A real server over a trained, promoted home: minutes. tests/serving is the fast route layer.
pytestmark = pytest.mark.slow

if TYPE_CHECKING:
    from lookalike.config import Settings
    from lookalike.similarity.registry import PublishResult

TOKEN = "test-admin-token"
USER = "u007"  # a shopper the shopper model knows
NEW_ITEM = "Bag-brand-new"  # the product the photo drop adds (`new_version`)
DISCONTINUED = "fm-train-00004"  # the product the photo drop discontinues


@pytest.fixture(scope="module")
def home(spark, tmp_path_factory):
    """Catalogue (300 + 300), one encoder, bundle version 1 in production; a shopper model
    version 1 in production."""
    from lookalike.catalog.ingest import ingest_fashion_mnist
    from lookalike.config import Settings
    from lookalike.similarity.promotion import promote
    from lookalike.similarity.training import run_training

    settings = Settings(
        home=tmp_path_factory.mktemp("service-home"),
        spark_shuffle_partitions=4,
        serve_poll_seconds=0.5,
        serve_admin_token=TOKEN,
        serve_max_upload_bytes=64 * 1024,
    )
    ingest_fashion_mnist(spark, settings=settings, limit=300)
    v1 = run_training(TrainConfig.from_dict(TINY_TRAIN), settings=settings, eval_limit=200)
    promote(settings, challenger=v1.model_version, spark=spark)
    make_shopper_model(settings)  # shopper model version 1 in production, too
    return settings


@pytest.fixture(scope="module")
def server(home) -> Iterator[Server]:
    from serving.main import create_app

    with Server(create_app(home)) as s:
        wait_for(lambda: httpx.get(f"{s.url}/readyz").status_code == 200)
        yield s


@pytest.fixture(scope="module")
def client(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url) as c:
        yield c


@pytest.fixture(scope="module")
def registry(home):
    from mlflow import MlflowClient

    return MlflowClient(home.tracking_uri, home.tracking_uri)


def serve_bundle(home: Settings, registry, client: httpx.Client, version: str) -> None:
    """Point the alias the service follows at similarity bundle ``version``; wait until the
    service serves it."""
    registry.set_registered_model_alias(home.recommender_model_name, home.serve_alias, version)
    wait_for(lambda: client.get("/v1/version").json().get("bundle_version") == version)


def serve_shopper(home: Settings, registry, client: httpx.Client, version: str) -> None:
    """Point the alias the service follows at shopper model ``version``; wait until the
    service serves it."""
    registry.set_registered_model_alias(home.shopper_model_name, home.shopper_alias, version)
    wait_for(
        lambda: (client.get("/readyz").json().get("shopper") or {}).get("model_version") == version
    )


@pytest.fixture
def bundle_v1(home, registry, client) -> None:
    """Bundle version 1, the first catalogue's (the state before the swap), is served."""
    serve_bundle(home, registry, client, "1")


@pytest.fixture
def shopper_v1(home, registry, client) -> None:
    """Shopper model version 1 is served."""
    serve_shopper(home, registry, client, "1")


@dataclass(frozen=True)
class NewVersion:
    """A photo drop (one new product, one discontinued) ingested, indexed and published."""

    update: Any  # the index update (lookalike.similarity.index.IndexResult)
    published: PublishResult
    status_before_publish: int  # GET /v1/items/<new product> after the ingest, before publishing


@pytest.fixture(scope="module")
def new_version(home, spark, registry, client, tmp_path_factory) -> NewVersion:
    """The swap: a new catalogue version, its index update published as production."""
    from lookalike.catalog.ingest import ingest_folder
    from lookalike.similarity.index import update_index
    from lookalike.similarity.registry import publish_bundle

    serve_bundle(home, registry, client, "1")  # what is served until the publish
    photo = client.get("/v1/items/fm-test-00003/image").content
    drop = tmp_path_factory.mktemp("new-version") / "drop"
    (drop / "Bag").mkdir(parents=True)
    (drop / "Bag" / "brand new.png").write_bytes(photo)
    ingest_folder(spark, drop, settings=home, discontinued=[DISCONTINUED])
    before = client.get(f"/v1/items/{NEW_ITEM}").status_code
    update = update_index(home)
    published = publish_bundle(home, Path(update.path))
    return NewVersion(update=update, published=published, status_before_publish=before)


@pytest.fixture
def bundle_v2(new_version, home, registry, client) -> NewVersion:
    """The new catalogue version's bundle (the state after the swap) is served."""
    serve_bundle(home, registry, client, new_version.published.bundle_version)
    return new_version


def png_bytes(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


# ---------------------------------------------------------------- bundle version 1: the routes


@pytest.fixture
def sample(client, bundle_v1) -> dict[str, Any]:
    """Five indexed items of bundle version 1 (a fixed seed: the same five every time)."""
    return client.get("/v1/items", params={"limit": 5, "seed": 1}).json()


@pytest.fixture
def item_id(sample) -> str:
    return sample["items"][0]["item_id"]


def test_readiness_and_version_name_the_live_bundle(client, bundle_v1):
    ready = client.get("/readyz").json()
    assert ready["ready"] and ready["versions"]["bundle_version"] == "1"
    version = client.get("/v1/version").json()
    assert version["index_version"] == "v000001" and version["loaded_at"]


def test_items_are_listed_looked_up_and_pictured(client, sample, item_id):
    assert len(sample["items"]) == 5 and sample["total"] == 600
    assert client.get(f"/v1/items/{item_id}").json()["item_id"] == item_id
    image = client.get(f"/v1/items/{item_id}/image")
    assert image.headers["content-type"] == "image/png" and image.content[:4] == b"\x89PNG"


def test_similar_by_id_ranks_other_items_by_score(client, item_id):
    sim = client.get(f"/v1/items/{item_id}/similar", params={"k": 7}).json()
    assert len(sim["items"]) == 7 and item_id not in {i["item_id"] for i in sim["items"]}
    assert sim["versions"]["bundle_version"] == "1"
    scores = [i["score"] for i in sim["items"]]
    assert scores == sorted(scores, reverse=True)


def test_similar_by_id_filters_by_category(client, item_id):
    cat = client.get(f"/v1/items/{item_id}/similar", params={"k": 5, "category": 3}).json()
    assert {i["category"] for i in cat["items"]} == {3}


def test_photo_upload_of_a_catalogue_item_finds_that_item_first(client, item_id):
    image = client.get(f"/v1/items/{item_id}/image")
    up = client.post("/v1/similar", files={"photo": ("x.png", image.content, "image/png")})
    assert up.status_code == 200, up.text
    assert up.json()["items"][0]["score"] > 0.999


def test_photo_upload_of_a_larger_rgb_jpeg(client, bundle_v1):
    rgb = np.full((300, 200, 3), 255, np.uint8)
    rgb[50:250, 40:160] = (200, 30, 30)
    jpeg = io.BytesIO()
    Image.fromarray(rgb).save(jpeg, format="JPEG")
    big = client.post(
        "/v1/similar", files={"photo": ("p.jpg", jpeg.getvalue(), "image/jpeg")}, params={"k": 3}
    )
    assert big.status_code == 200 and len(big.json()["items"]) == 3


def test_web_page_is_served(client, bundle_v1):
    page = client.get("/")
    assert page.status_code == 200 and "lookalike" in page.text


def test_metrics_count_requests_and_the_index_size(client, item_id):
    client.get(f"/v1/items/{item_id}/similar")  # at least one request on the route counted
    metrics = client.get("/metrics").text
    assert 'lookalike_requests_total{method="GET",route="/v1/items/{item_id}/similar"' in metrics
    assert 'lookalike_index_items{model="similar"} 600.0' in metrics


# ---------------------------------------------------------------- shopper model version 1


@pytest.fixture(scope="module")
def seen(home) -> set[str]:
    """The items ``USER`` interacted with."""
    from lookalike.shopper.interactions import read_interactions

    events = read_interactions(home.interactions_uri).to_pandas()
    return set(events.loc[events["user_id"] == USER, "item_id"].astype(str))


def test_shopper_model_version_1_is_ready(client, shopper_v1):
    ready = wait_for(lambda: client.get("/readyz").json().get("shopper"))
    assert ready["model_version"] == "1" and ready["users"] == 200


def test_known_shopper_gets_personal_recommendations_not_yet_seen(
    client, home, seen, shopper_v1, bundle_v1
):
    from lookalike.catalog.table import table_version

    r = client.get(f"/v1/users/{USER}/recommendations", params={"k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mode"] == "personal" and body["known_user"] is True
    assert len(body["items"]) == 5 and not seen & {i["item_id"] for i in body["items"]}
    assert body["versions"]["model_version"] == "1"
    assert body["versions"]["interactions_version"] == table_version(home.interactions_uri)
    image = client.get(body["items"][0]["image_url"])
    assert image.status_code == 200 and image.content[:4] == b"\x89PNG"


def test_known_shopper_may_get_seen_items_again(client, seen, shopper_v1):
    with_seen = client.get(
        f"/v1/users/{USER}/recommendations", params={"exclude_seen": False, "k": 50}
    ).json()
    assert seen & {i["item_id"] for i in with_seen["items"]}


def test_blended_recommendations_mix_in_visual_similarity(client, shopper_v1):
    blended = client.get(f"/v1/users/{USER}/recommendations", params={"blend": 0.5}).json()
    assert blended["mode"] == "personal+visual"


def test_unknown_shopper_gets_the_documented_fallback(client, shopper_v1):
    # a shopper the model has never seen: the documented fallback, not an error
    new = client.get("/v1/users/new-shopper-42/recommendations", params={"k": 6})
    assert new.status_code == 200
    assert new.json()["mode"] == "fallback:popular-diverse" and len(new.json()["items"]) == 6
    assert new.json()["known_user"] is False


@pytest.mark.parametrize(
    ("user", "params", "field"),
    [
        ("bad%20user", {}, "user_id"),
        ("x" * 200, {}, "user_id"),
        (".dot-first", {}, "user_id"),
        (USER, {"k": 0}, "k"),
        (USER, {"k": 101}, "k"),
        (USER, {"blend": 2}, "blend"),
        (USER, {"exclude_seen": "maybe"}, "exclude_seen"),
    ],
    ids=[
        "space-in-id",
        "id-too-long",
        "dot-first-id",
        "k-0",
        "k-101",
        "blend-2",
        "exclude_seen-maybe",
    ],
)
def test_malformed_recommendation_request_gets_a_422_naming_the_field(
    client, shopper_v1, user, params, field
):
    r = client.get(f"/v1/users/{user}/recommendations", params=params)
    assert r.status_code == 422, (user, params, r.text)
    assert r.json()["detail"].startswith(field), r.json()["detail"]


def test_live_shopper_model_version_is_a_metric(client, shopper_v1):
    assert 'lookalike_live_bundle_version{model="shopper"} 1.0' in client.get("/metrics").text


# ---------------------------------------------------------------- shopper model version 2


@pytest.fixture
def shopper_v2(home, registry, client, shopper_v1) -> Iterator[Any]:
    """A second shopper model version, trained and made production for one test; production
    moves back to version 1 afterwards (the only shopper swap: the service's second load)."""
    from lookalike.shopper.model import MFConfig
    from lookalike.shopper.training import train_shopper
    from tests.support.builders import TINY_SHOPPER

    v2 = train_shopper(home, MFConfig(**TINY_SHOPPER | {"factors": 12}), baselines=False)
    registry.set_registered_model_alias(home.shopper_model_name, home.shopper_alias, "2")
    try:
        yield v2
    finally:
        serve_shopper(home, registry, client, "1")


def test_shopper_model_hot_swaps_when_the_alias_moves(client, shopper_v2):
    assert shopper_v2.model_version == "2"
    swapped = wait_for(
        lambda: (
            client.get("/v1/users/u001/recommendations").json()["versions"]["model_version"] == "2"
        )
    )
    assert swapped
    assert 'lookalike_reloads_total{model="shopper"} 2.0' in client.get("/metrics").text


# ---------------------------------------------------------------- any version: bad input, auth


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "message"),
    [
        ("get", "/v1/items/nope/similar", {}, 404, "unknown item 'nope'"),
        ("get", "/v1/items/nope", {}, 404, "unknown item"),
        ("get", "/v1/items/nope/image", {}, 404, "unknown item"),
        ("get", "/v1/items/fm-test-00001/similar", {"params": {"k": 0}}, 422, "k:"),
        ("get", "/v1/items/fm-test-00001/similar", {"params": {"k": 101}}, 422, "k:"),
        ("get", "/v1/items/fm-test-00001/similar", {"params": {"k": "x"}}, 422, "k:"),
        (
            "post",
            "/v1/similar",
            {"files": {"photo": ("a.txt", b"hello", "text/plain")}},
            415,
            "send image/png or image/jpeg",
        ),
        (
            "post",
            "/v1/similar",
            {"files": {"photo": ("a.png", b"not a png", "image/png")}},
            400,
            "photo: not an image",
        ),
        (
            "post",
            "/v1/similar",
            {"files": {"photo": ("a.png", b"", "image/png")}},
            400,
            "photo: empty file",
        ),
        ("post", "/v1/similar", {}, 422, "photo"),
    ],
)
def test_bad_input_gets_a_4xx_with_a_message(server, method, path, kwargs, status, message):
    r = getattr(httpx, method)(server.url + path, **kwargs)
    assert r.status_code == status, r.text
    assert message in r.json()["detail"]


def test_oversized_and_bomb_uploads_are_refused(server):
    noise = np.random.default_rng(0).integers(0, 256, (400, 400), dtype=np.uint8)
    big = png_bytes(noise)
    assert len(big) > 64 * 1024
    r = httpx.post(f"{server.url}/v1/similar", files={"photo": ("b.png", big, "image/png")})
    assert r.status_code == 413 and "larger than" in r.json()["detail"]
    # a tiny file that claims 40,000 x 40,000 pixels: refused before decoding
    bomb = png_declaring(40_000, 40_000)
    r = httpx.post(f"{server.url}/v1/similar", files={"photo": ("x.png", bomb, "image/png")})
    assert r.status_code == 400 and "decompression bomb" in r.json()["detail"], r.text


def test_admin_reload_needs_the_bearer_token(server, bundle_v1):
    url = f"{server.url}/v1/admin/reload"
    assert httpx.post(url).status_code == 401
    assert httpx.post(url, headers={"Authorization": "Bearer wrong"}).status_code == 403
    ok = httpx.post(url, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and ok.json()["live_version"] == "1"


def test_not_ready_without_a_production_bundle(tmp_path):
    from lookalike.config import Settings
    from serving.main import create_app

    empty = Settings(home=tmp_path / "empty", serve_poll_seconds=0.5)
    with Server(create_app(empty)) as s:
        ready = wait_for(lambda: httpx.get(f"{s.url}/readyz"))
        assert ready.status_code == 503 and "lookalike-recommender" in ready.json()["reason"]
        r = httpx.get(f"{s.url}/v1/items/x/similar")
        assert r.status_code == 503 and r.json()["detail"].startswith("not ready")
        assert httpx.get(f"{s.url}/healthz").status_code == 200


def _corrupt_bundle_artifacts(settings, version: str) -> None:
    from mlflow import MlflowClient

    src = MlflowClient(settings.tracking_uri).get_model_version_download_uri(
        settings.recommender_model_name, version
    )
    root = Path(src.removeprefix("file://"))
    hits = list(root.rglob("vectors.npy"))
    assert hits, f"no vectors.npy under {root}"
    for f in hits:
        data = bytearray(f.read_bytes())
        data[-1] ^= 0xFF
        f.write_bytes(bytes(data))


# ---------------------------------------------------------------- the swap: a new version


@pytest.mark.slow
def test_new_products_are_not_served_before_their_bundle_is_published(new_version):
    assert new_version.status_before_publish == 404  # not yet: still version 1
    assert new_version.published.production


@pytest.mark.slow
def test_hot_swap_follows_the_alias_to_the_published_version(client, bundle_v2):
    published = bundle_v2.published
    live = wait_for(
        lambda: client.get("/v1/version").json()["bundle_version"] == published.bundle_version
    )
    assert live
    assert client.get(f"/v1/items/{NEW_ITEM}").status_code == 200


@pytest.mark.slow
def test_new_product_is_recommendable_and_discontinued_one_gone(client, bundle_v2):
    sim = client.get("/v1/items/fm-test-00003/similar", params={"k": 3}).json()
    assert NEW_ITEM in {i["item_id"] for i in sim["items"]}  # new product recommendable
    assert client.get(f"/v1/items/{DISCONTINUED}/similar").status_code == 404  # deleted: gone
    assert sim["versions"]["bundle_version"] == bundle_v2.published.bundle_version


@pytest.mark.slow
def test_broken_version_is_refused_and_the_old_one_keeps_serving(
    client, bundle_v2, home, registry, spark, tmp_path
):
    """A version that fails its checks is not swapped in; the old one keeps serving."""
    from lookalike.registry.aliases import PRODUCTION
    from lookalike.registry.encoders import fetch_encoder
    from lookalike.similarity.index import build_full
    from lookalike.similarity.registry import publish_bundle

    published, update = bundle_v2.published, bundle_v2.update
    shutil.copytree(update.path, tmp_path / "copy")
    broken = publish_bundle(home, Path(update.path), set_production=False)
    assert broken.reused  # same index version: re-registering gives the same version back
    rebuilt = build_full(home, fetch_encoder(home, "champion"), spark=spark)
    bad = publish_bundle(home, Path(rebuilt.path), set_production=False)
    _corrupt_bundle_artifacts(home, bad.bundle_version)
    try:
        registry.set_registered_model_alias(
            home.recommender_model_name, PRODUCTION, bad.bundle_version
        )
        wait_for(
            lambda: (
                'lookalike_reload_failures_total{model="similar"} 1.0'
                in client.get("/metrics").text
            )
        )
        assert client.get("/v1/version").json()["bundle_version"] == published.bundle_version
        assert client.get("/readyz").status_code == 200
        forced = client.post(
            "/v1/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"}
        ).json()
        assert forced["action"] == "failed" and "checksum mismatch" in forced["reason"]
        assert forced["live_version"] == published.bundle_version
    finally:
        # put production back so later tests see a healthy registry
        registry.set_registered_model_alias(
            home.recommender_model_name, PRODUCTION, published.bundle_version
        )


# ---------------------------------------------------------------- any version: whole-service


def _schemathesis(
    url: str, report_dir: Path, *extra: str, seconds: int = 45
) -> subprocess.CompletedProcess:
    """schemathesis' CLI with ALL its checks against the running server (the repo's
    schemathesis.toml holds its one documented exception), bounded in examples and time
    (``tests/serving/test_contract.py`` runs 30 cases of every operation in process)."""
    st = Path(sys.executable).parent / "schemathesis"
    config = Path(__file__).resolve().parents[2] / "schemathesis.toml"
    cmd = [str(st), "--config-file", str(config), "run", f"{url}/openapi.json"]
    cmd += ["--checks", "all", "--phases", "examples,coverage,fuzzing,stateful"]
    cmd += ["--max-examples", "20", "--max-time", str(seconds), "--seed", "1", "--workers", "1"]
    cmd += ["--request-timeout", "20", "--report", "junit", "--report-dir", str(report_dir)]
    return subprocess.run(cmd + list(extra), capture_output=True, text=True, timeout=400)


def _passed(done: subprocess.CompletedProcess, at_least: int) -> None:
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    summary = re.search(r"(\d+) generated, (\d+) passed", done.stdout)
    assert summary and summary[1] == summary[2], done.stdout[-3000:]
    assert int(summary[1]) >= at_least, done.stdout[-3000:]


@pytest.mark.slow
def test_schemathesis_all_checks_on_every_route(server, tmp_path):
    """Property-based requests from the service's own OpenAPI schema, every check (status
    codes, bodies and headers as declared, invalid input refused, valid input accepted),
    every route; the admin route with the token as generated (missing or wrong)."""
    _passed(_schemathesis(server.url, tmp_path / "all"), at_least=100)


@pytest.fixture(scope="module")
def similarity_only(home) -> Iterator[Server]:
    """The same home served by a service that follows a shopper model nobody deployed (no
    version of that name in the registry): a similarity-only deployment, without training a
    second encoder."""
    from serving.main import create_app

    alone = home.model_copy(update={"shopper_model_name": "lookalike-shopper-model-none"})
    with Server(create_app(alone)) as s:

        def polled() -> bool:  # the bundle loaded and the shopper alias read: none there
            body = httpx.get(f"{s.url}/readyz").json()
            return body["ready"] and body["shopper_status"] == "not deployed"

        wait_for(polled)
        yield s


@pytest.mark.slow
def test_a_similarity_only_service_says_no_shopper_model_is_deployed(similarity_only, tmp_path):
    """404 saying how to deploy one (not a 503 forever), /v1/version says so, and schemathesis
    with all its checks finds nothing (it found "ST101 Server error" on the user route)."""
    r = httpx.get(f"{similarity_only.url}/v1/users/{USER}/recommendations")
    assert r.status_code == 404 and r.json()["detail"].startswith("no shopper model deployed")
    assert "`lookalike shopper train`" in r.json()["detail"]
    shopper = httpx.get(f"{similarity_only.url}/v1/version").json()["shopper"]
    assert shopper["status"] == "not deployed" and shopper["versions"] is None
    _passed(_schemathesis(similarity_only.url, tmp_path / "similarity-only"), at_least=100)


@pytest.mark.slow
def test_schemathesis_all_checks_on_the_admin_route_with_the_token(server, tmp_path):
    done = _schemathesis(
        server.url,
        tmp_path / "admin",
        "--include-path",
        "/v1/admin/reload",
        "--header",
        f"Authorization: Bearer {TOKEN}",
        seconds=30,
    )
    _passed(done, at_least=5)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.requires(CHROMIUM is not None, "Debian's chromium (scripts/setup.sh installs it)")
def test_web_page_in_a_real_browser(server, tmp_path):
    """Browse, click a product, see its similar products, upload a photo; keep a screenshot."""
    from playwright.sync_api import sync_playwright

    from tests.support.builders import REPO

    artifacts = REPO / "tests" / "artifacts"
    artifacts.mkdir(exist_ok=True)
    photo = tmp_path / "query.png"
    photo.write_bytes(httpx.get(f"{server.url}/v1/items/fm-test-00007/image").content)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"], headless=True
        )
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server.url + "/", timeout=30_000)
            page.wait_for_selector("#products .card", timeout=30_000)
            assert page.locator("#products .card").count() == 24
            assert "bundle v" in page.inner_text("#versions")
            # every product image actually loaded (naturalWidth > 0)
            page.wait_for_function(
                "[...document.querySelectorAll('#products img')].every(i => i.complete)"
            )
            broken = page.evaluate(
                "[...document.querySelectorAll('#products img')]"
                ".filter(i => !i.naturalWidth).length"
            )
            assert broken == 0
            first = page.locator("#products .card").first
            clicked = first.get_attribute("data-item-id")
            first.click()
            page.wait_for_selector("#similar .card", timeout=30_000)
            assert page.locator("#similar .card").count() == 12
            assert page.inner_text("#query-label") == clicked
            shown = [
                page.locator("#similar .card").nth(i).get_attribute("data-item-id")
                for i in range(12)
            ]
            api = httpx.get(f"{server.url}/v1/items/{clicked}/similar", params={"k": 12}).json()
            assert shown == [i["item_id"] for i in api["items"]]
            page.set_input_files("#photo", str(photo))
            page.click("#upload button[type=submit]")
            page.wait_for_function(
                "document.querySelector('#query-label').textContent === 'your photo'"
            )
            page.wait_for_selector("#similar .card")
            # for a shopper: the model's picks, and the mode it used
            page.fill("#user", "u007")
            page.click("#shopper button[type=submit]")
            page.wait_for_selector("#for-user .card", timeout=30_000)
            assert page.locator("#for-user .card").count() == 12
            assert page.inner_text("#shopper-info").startswith("personal · shopper model v")
            page.screenshot(path=str(artifacts / "web-page.png"), full_page=True)
            assert not errors, errors
        finally:
            browser.close()
    assert (artifacts / "web-page.png").stat().st_size > 10_000


@pytest.mark.slow
@pytest.mark.requires(CHROMIUM is not None, "Debian's chromium (scripts/setup.sh installs it)")
def test_web_page_of_a_similarity_only_service_says_no_shopper_model(similarity_only):
    """Beside the shopper form, how to deploy a shopper model, not an error."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"], headless=True
        )
        try:
            page = browser.new_page()
            page.goto(similarity_only.url + "/", timeout=30_000)
            page.wait_for_selector("#products .card", timeout=30_000)
            info = "document.querySelector('#shopper-info').textContent"
            page.wait_for_function(f"{info}.startsWith('no shopper model deployed')")
            page.evaluate(f"{info} = ''")  # what the user route answers fills it again
            page.fill("#user", USER)
            page.click("#shopper button[type=submit]")
            page.wait_for_function(f"{info}.startsWith('no shopper model deployed')")
            assert "`lookalike shopper train`" in page.inner_text("#shopper-info")
            assert page.locator("#for-user .card").count() == 0
            assert page.inner_text("#error") == ""
        finally:
            browser.close()
