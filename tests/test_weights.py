"""The pretrained-weights policy without the internet: found, fetched (from a local file URL or a
monkeypatched download), missing under "require" (a clear error) and under "fallback" (a warning)."""
import hashlib, subprocess
import pytest
import torch
from conftest import ROOT, BIN
from cxr_nbdev import core, weights
from cxr_nbdev.core import load_json
from cxr_nbdev.runs import record_weights
from cxr_nbdev.weights import MissingWeightsError, PRETRAINED, pretrained_weights


@pytest.fixture
def hub(tmp_path, monkeypatch):
    "An empty torch hub cache under a temporary TORCH_HOME."
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # so get_dir() follows TORCH_HOME
    d = tmp_path / "torch" / "hub" / "checkpoints"
    assert weights.hub_checkpoints() == d
    return d


def fake_weights(path):
    "A small real state-dict file and its SHA-256."
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"w": torch.arange(4.0)}, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", list(PRETRAINED))
def test_found_in_hub_cache(hub, name):
    f = hub / PRETRAINED[name]["file"]
    fake_weights(f)
    got, how = pretrained_weights(name, "require")
    assert got == f and how == f"torch hub cache {f}"


def test_found_in_weights_dir_first(hub, tmp_path):
    f = tmp_path / "prefetched" / PRETRAINED["vgg16"]["file"]
    fake_weights(f)
    fake_weights(hub / f.name)
    got, how = pretrained_weights("vgg16", "require", weights_dir=str(f.parent))
    assert got == f and how.startswith("weights_dir")


def test_explicit_path_must_exist(hub, tmp_path):
    with pytest.raises(FileNotFoundError, match="densenet_weights="):
        pretrained_weights("densenet121", "fallback", path=str(tmp_path / "nope.pth"))
    f = tmp_path / "dn.pth"
    fake_weights(f)
    assert pretrained_weights("densenet121", "require", path=str(f))[0] == f


def test_fetched_from_local_file_url(hub, tmp_path, monkeypatch):
    "Under 'require' a missing file is downloaded from its URL with the SHA-256 prefix checked."
    src = tmp_path / "server" / "vgg16.pth"
    sha = fake_weights(src)
    monkeypatch.setitem(PRETRAINED, "vgg16", {**PRETRAINED["vgg16"], "url": src.as_uri(), "sha256_prefix": sha[:8]})
    got, how = pretrained_weights("vgg16", "require")
    assert got == hub / PRETRAINED["vgg16"]["file"] and got.read_bytes() == src.read_bytes()
    assert how.startswith("downloaded file://")
    assert torch.load(got, weights_only=True)["w"].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_fetched_with_monkeypatched_download(hub, monkeypatch):
    calls = []
    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, hash_prefix))
        fake_weights(__import__("pathlib").Path(dst))
    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    got, _ = pretrained_weights("densenet121", "require")
    assert got.is_file()
    assert calls == [(PRETRAINED["densenet121"]["url"], "a639ec97")]


def test_wrong_hash_is_refused(hub, tmp_path, monkeypatch):
    src = tmp_path / "server" / "inception.pth"
    fake_weights(src)
    monkeypatch.setitem(PRETRAINED, "inception", {**PRETRAINED["inception"], "url": src.as_uri()})
    with pytest.raises(MissingWeightsError, match="invalid hash value"):
        pretrained_weights("inception", "require")
    assert not (hub / PRETRAINED["inception"]["file"]).exists()


def test_missing_under_require_names_file_folder_and_command(hub, monkeypatch):
    def offline(url, dst, hash_prefix=None, progress=True): raise OSError("network unreachable")
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(MissingWeightsError) as e:
        pretrained_weights("vgg16", "require", weights_dir="/data/weights")
    msg = str(e.value)
    assert "\n" not in msg
    for part in ("vgg16-397923af.pth", str(hub), "/data/weights", "cxr-weights --dir", "network unreachable"):
        assert part in msg, (part, msg)
    assert isinstance(e.value, FileNotFoundError)


def test_missing_under_fallback_warns_and_returns_none(hub, monkeypatch):
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("fallback must not download"))
    with pytest.warns(UserWarning, match="cxr-weights"):
        got, reason = pretrained_weights("densenet121", "fallback")
    assert got is None and "random-init DenseNet-121" in reason


def test_bad_policy():
    with pytest.raises(core.ParamError, match="weights_policy"):
        pretrained_weights("vgg16", "strict")


def test_record_weights_keeps_found_and_source(tmp_path):
    record_weights(tmp_path, "vgg16_imagenet", False, "a random-init frozen VGG16")
    m = load_json(tmp_path / "manifest.json")
    assert m["weights"]["vgg16_imagenet"]["found"] is False
    assert m["weights"]["vgg16_imagenet"]["source"] == "a random-init frozen VGG16"


def test_cxr_weights_command(hub, tmp_path, monkeypatch, capsys):
    "`cxr-weights` is installed; offline (a failing download) it reports one clear error, no traceback."
    r = subprocess.run([str(BIN / "cxr-weights"), "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--dir" in r.stdout
    def offline(url, dst, hash_prefix=None, progress=True): raise OSError("network unreachable")
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    assert weights.weights_main(["--dir", str(tmp_path / "w"), "--names", "vgg16"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cxr-weights: error") and "network unreachable" in err and err.count("\n") == 1


def test_prefetch_copies_from_hub(hub, tmp_path, monkeypatch):
    f = hub / PRETRAINED["vgg16"]["file"]
    sha = fake_weights(f)
    monkeypatch.setitem(PRETRAINED, "vgg16", {**PRETRAINED["vgg16"], "sha256_prefix": sha[:8]})
    assert weights.prefetch_weights(tmp_path / "w", ["vgg16"]) == {"vgg16": f"copied from {f}"}
    assert (tmp_path / "w" / f.name).read_bytes() == f.read_bytes()
    assert weights.weights_main(["--dir", str(tmp_path / "w"), "--names", "vgg16"]) == 0


def test_registry_matches_torchvision_and_torch_fidelity():
    "The URLs are the ones the libraries themselves download; each file name carries its SHA-256 prefix."
    import torchvision
    assert PRETRAINED["vgg16"]["url"] == torchvision.models.VGG16_Weights.IMAGENET1K_V1.url
    assert PRETRAINED["densenet121"]["url"] == torchvision.models.DenseNet121_Weights.IMAGENET1K_V1.url
    fid = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")
    assert PRETRAINED["inception"]["url"] == fid.URL_INCEPTION_V3
    for spec in PRETRAINED.values():
        assert spec["url"].rsplit("/", 1)[1] == spec["file"]
        assert spec["file"].rsplit(".", 1)[0].endswith("-" + spec["sha256_prefix"])
