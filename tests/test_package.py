"""Unit tests of the helper package's main paths, on generated data."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import catsdogs
from catsdogs.data import CachedPhotos, build_cache, labelled_cache, train_transform
from catsdogs.device import Device, native_bf16, pick_precision
from catsdogs.download import extract_competition, prepare_dataset
from catsdogs.model import ModelConfig, build_model, count_parameters, effective_attention, mimetic_init_
from catsdogs.predict import log_loss
from catsdogs.submission import write_submission
from catsdogs.training import BLOG, SMALL, TrainConfig, make_optimizers, make_schedulers

CPU_BF16, CPU_FP32 = Device(torch.device("cpu"), "bf16"), Device(torch.device("cpu"), "fp32")


def test_seed_model_has_the_blog_parameter_count_and_output_shape():
    model = build_model()
    assert count_parameters(model) == 2_858_242
    assert model(torch.zeros(2, 3, 224, 224)).shape == (2, 2)


def test_workspace_follows_profile_and_extraction(isolated_data, monkeypatch, demo_archive):
    assert catsdogs.workspace().root == isolated_data / "demo-small"
    monkeypatch.setenv("CATSDOGS_PROFILE", "full")
    assert catsdogs.workspace().is_demo  # nothing extracted yet: the demo
    ws = prepare_dataset(archive=demo_archive)
    assert not ws.is_demo and catsdogs.workspace() == ws
    counts = json.loads((ws.root / ".extracted").read_text())
    assert counts == {"archive": counts["archive"], "train": 32, "cats": 16, "dogs": 16, "test": 8,
                      "sample_submission_rows": 8}


def test_small_profile_generates_its_demo():
    ws = prepare_dataset()
    assert ws.is_demo
    assert len(list(ws.train_dir.glob("cat.*.jpg"))) == 48 and len(list(ws.test_dir.glob("*.jpg"))) == 24


def test_cache_is_built_once_and_rebuilt_when_a_photo_changes(monkeypatch, demo_archive):
    monkeypatch.setenv("CATSDOGS_PROFILE", "full")
    ws = prepare_dataset(archive=demo_archive)
    cache = labelled_cache(ws)
    assert cache.images.shape == (32, 224, 224, 3) and cache.ok.all()
    built = cache.path.stat().st_mtime_ns
    assert labelled_cache(ws).path.stat().st_mtime_ns == built  # reused
    photo = ws.train_dir / "cat.0.jpg"
    os.utime(photo, ns=(photo.stat().st_atime_ns, photo.stat().st_mtime_ns + 10**9))
    rebuilt = labelled_cache(ws)
    assert rebuilt.path.stat().st_mtime_ns != built
    np.testing.assert_array_equal(rebuilt.images[0], cache.images[0])


def test_augmented_batches_are_uint8_and_model_input_is_channels_last(monkeypatch, demo_archive):
    monkeypatch.setenv("CATSDOGS_PROFILE", "full")
    ws = prepare_dataset(archive=demo_archive)
    cache = labelled_cache(ws)
    data = CachedPhotos(cache, np.arange(4), np.array([0, 0, 1, 1]), train_transform())
    image, label = data[2]
    assert image.dtype == torch.uint8 and image.shape == (3, 224, 224) and label == 1
    x = CPU_BF16.input(torch.stack([data[i][0] for i in range(4)]))
    assert x.dtype == torch.bfloat16 and x.is_contiguous(memory_format=torch.channels_last)


def test_model_input_is_imagenet_normalised_in_fp32_and_bf16():
    photos = torch.randint(0, 256, (3, 3, 32, 48), dtype=torch.uint8)
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    expected = (photos.float() / 255 - mean) / std
    for precision, tolerance in (("fp32", 1e-5), ("bf16", 0.04)):  # bf16 keeps 8 significant bits: 2**-6 at |x| ~ 2
        x = Device(torch.device("cpu"), precision).input(photos)
        assert x.shape == photos.shape and x.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(x.float(), expected, atol=tolerance, rtol=0)


def test_recipes_from_plain_values_the_blog_and_the_small_profile():
    blog = TrainConfig.blog()
    assert (blog.optimizer, blog.lr, blog.schedule, blog.batch_size, blog.epochs) == ("adam", 3e-5, "constant", 64, 20)
    assert TrainConfig.blog(epochs=3).epochs == 3 and set(BLOG) <= set(TrainConfig().to_dict())
    notebook_globals = {"epochs": 7, "crop_scale": [0.5, 1], "compile_model": True, "print": print, "x": 1}
    config = TrainConfig.from_values(notebook_globals)
    assert (config.recipe, config.epochs, config.crop_scale, config.compile_model) == ("modern", 7, (0.5, 1.0), True)
    small = config.small()
    assert (small.epochs, small.batch_size, small.warmup_epochs, small.crop_scale) == (1, 32, 0.0, (0.5, 1.0))
    assert SMALL["epochs"] == 1


def test_warmup_then_cosine_schedule_and_no_decay_on_norms():
    config = TrainConfig(optimizer="adamw", epochs=10, warmup_epochs=2, lr=1.0)
    model = build_model(ModelConfig(depth=1))
    [optimizer] = make_optimizers(model, config)
    decayed = {id(p) for p in optimizer.param_groups[0]["params"]}
    for name, p in model.named_parameters():
        assert (id(p) in decayed) == (p.ndim >= 2 and "pos_embedding" not in name and "cls_token" not in name)
    [scheduler] = make_schedulers([optimizer], config, steps_per_epoch=10)
    lrs = []
    for _ in range(100):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(0.05) and max(lrs) == pytest.approx(1.0) and lrs.index(max(lrs)) == 19
    assert all(a >= b for a, b in zip(lrs[19:], lrs[20:])) and lrs[-1] < 0.01


def _step(model, optimizers, schedulers, images):
    model.zero_grad()
    model(images).square().sum().backward()
    for optimizer in optimizers:
        optimizer.step()
    for scheduler in schedulers:
        scheduler.step()


def test_muon_takes_the_transformer_matrices_and_adamw_the_rest():
    config = TrainConfig(epochs=2, warmup_epochs=1)
    assert config.optimizer == "muon"
    model = build_model(ModelConfig(depth=2))
    optimizers = make_optimizers(model, config)
    muon_opt, adamw_opt = optimizers
    assert isinstance(muon_opt, torch.optim.Muon) and isinstance(adamw_opt, torch.optim.AdamW)
    muon = {id(p) for group in muon_opt.param_groups for p in group["params"]}
    adamw_decayed = {id(p) for p in adamw_opt.param_groups[0]["params"]}
    adamw_plain = {id(p) for p in adamw_opt.param_groups[1]["params"]}
    for name, p in model.named_parameters():
        in_block_matrix = p.ndim == 2 and name.startswith("transformer.")
        assert (id(p) in muon) == in_block_matrix, name
        assert (id(p) in adamw_decayed) == (not in_block_matrix and p.ndim >= 2 and "pos_embedding" not in name
                                            and "cls_token" not in name), name
        assert (id(p) in muon) + (id(p) in adamw_decayed) + (id(p) in adamw_plain) == 1, name
    assert "to_patch_embedding.2.weight" in dict(model.named_parameters()) and len(muon) == 2 * 8

    # the schedule drives both optimisers, each from its own base rate
    schedulers = make_schedulers(optimizers, config, steps_per_epoch=5)
    assert muon_opt.param_groups[0]["lr"] == pytest.approx(config.muon_lr / 5)
    assert adamw_opt.param_groups[0]["lr"] == pytest.approx(config.lr / 5)
    images = torch.randn(2, 3, 224, 224)
    for _ in range(5):
        _step(model, optimizers, schedulers, images)
    assert muon_opt.param_groups[0]["lr"] == pytest.approx(config.muon_lr)
    assert adamw_opt.param_groups[0]["lr"] == pytest.approx(config.lr)

    # resuming from a saved state continues exactly where the run would have gone
    saved = io.BytesIO()
    torch.save({"optimizers": [o.state_dict() for o in optimizers], "schedulers": [s.state_dict() for s in schedulers]},
               saved)
    saved.seek(0)
    state = torch.load(saved, weights_only=True)
    resumed = build_model(ModelConfig(depth=2))
    resumed.load_state_dict(model.state_dict())
    resumed_optimizers = make_optimizers(resumed, config)
    resumed_schedulers = make_schedulers(resumed_optimizers, config, steps_per_epoch=5)
    for thing, saved_state in zip([*resumed_optimizers, *resumed_schedulers], [*state["optimizers"], *state["schedulers"]]):
        thing.load_state_dict(saved_state)
    _step(model, optimizers, schedulers, images)
    _step(resumed, resumed_optimizers, resumed_schedulers, images)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), resumed.parameters()))
    assert resumed_optimizers[0].param_groups[0]["lr"] == muon_opt.param_groups[0]["lr"] < config.muon_lr

    with pytest.raises(ValueError, match="optimizer must be"):
        make_optimizers(model, TrainConfig(optimizer="sgd"))


def test_muon_on_an_old_torch_says_what_to_do(monkeypatch):
    monkeypatch.delattr(torch.optim, "Muon")
    model = build_model(ModelConfig(depth=1))
    with pytest.raises(RuntimeError, match=r"torch>=2.9.*optimizer = \"adamw\""):
        make_optimizers(model, TrainConfig())
    [adamw] = make_optimizers(model, TrainConfig(optimizer="adamw"))
    assert isinstance(adamw, torch.optim.AdamW)


def test_precision_choice():
    cpu = torch.device("cpu")
    assert pick_precision(cpu, "fp32") == "fp32"
    assert pick_precision(cpu) in ("bf16", "fp32")
    with pytest.raises(ValueError):
        pick_precision(cpu, "int4")


def test_submission_is_sorted_by_numeric_id_and_clipped(tmp_path):
    path = write_submission(["10", "2", "1"], np.array([0.9, 0.0, 1.0]), tmp_path / "s.csv", clip=0.01)
    assert path.read_text().splitlines() == ["id,label", "1,0.990000", "2,0.010000", "10,0.900000"]


def test_log_loss_matches_the_definition():
    labels, probs = np.array([1, 0]), np.array([0.8, 0.4])
    assert log_loss(labels, probs) == pytest.approx(-(np.log(0.8) + np.log(0.6)) / 2)


def test_log_loss_stays_finite_for_certain_float32_predictions():
    """A confidently wrong float32 probability of exactly 1 is clipped, not log(0) = -inf."""
    loss = log_loss(np.array([0, 1]), np.array([1.0, 1.0], dtype=np.float32))
    assert loss == pytest.approx(-np.log(1e-15) / 2, rel=1e-3)


def test_extracted_kaggle_data_is_used_once_the_archive_is_gone(monkeypatch, demo_archive, tmp_path):
    monkeypatch.setenv("CATSDOGS_PROFILE", "full")
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle"))
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    ws = prepare_dataset(archive=demo_archive)
    assert prepare_dataset() == ws and not ws.is_demo


def test_mimetic_init_keeps_the_architecture_and_makes_attention_local():
    model = build_model()
    before = {name: p.shape for name, p in model.named_parameters()}
    mimetic_init_(model)
    assert {name: p.shape for name, p in model.named_parameters()} == before
    assert count_parameters(model) == 2_858_242
    attention = model.transformer.net.layers[0][0].fn
    assert torch.equal(attention.proj_k[:, :50], torch.eye(50)) and not attention.proj_k[:, 50:].any()
    # Position codes alone: each patch's query should score highest the key of itself or of one of its
    # eight neighbours on the 7x7 grid, and near patches above far ones.
    grid = torch.stack(torch.meshgrid(torch.arange(7), torch.arange(7), indexing="ij"), -1).reshape(49, 2).float()
    distance = torch.cdist(grid, grid)

    def scores_of(m):
        block = m.transformer.net.layers[0][0].fn
        codes = m.pos_embedding[0, 1:]
        with torch.no_grad():
            return block.to_q(codes) @ block.to_k(codes).T

    def share_looking_next_door(scores):
        return (distance[torch.arange(49), scores.argmax(dim=1)] <= 1.5).float().mean()

    scores = scores_of(model)
    assert share_looking_next_door(scores) > 0.85
    assert scores[(distance > 0) & (distance <= 1)].mean() > scores[distance >= 4].mean()
    # The libraries' own initialisation has no such structure: random position vectors.
    torch.manual_seed(0)
    assert share_looking_next_door(scores_of(build_model())) < 0.5


@pytest.mark.parametrize("init", ["default", "mimetic"])
def test_effective_attention_reproduces_the_layer_output(init):
    torch.manual_seed(0)
    model = build_model().eval()
    if init == "mimetic":
        mimetic_init_(model)
    x = torch.randn(2, 3, 224, 224)
    layer = 2
    weights = effective_attention(model, x, layer)
    assert weights.shape == (2, 8, 50, 50)
    with torch.no_grad():  # the layer's input, the long way round
        tokens = torch.cat([model.cls_token.expand(2, -1, -1), model.to_patch_embedding(x)], dim=1) + model.pos_embedding
        for attention_block, feed_forward in model.transformer.net.layers[:layer]:
            tokens = tokens + attention_block(tokens)
            tokens = tokens + feed_forward(tokens)
        block = model.transformer.net.layers[layer][0]
        values = block.fn.to_v(block.norm(tokens)).reshape(2, 50, 8, 16).transpose(1, 2)
        rebuilt = block.fn.to_out((weights @ values).transpose(1, 2).reshape(2, 50, 128))
        torch.testing.assert_close(rebuilt, block(tokens), atol=1e-5, rtol=1e-5)


class _FakeGPU:
    """What ``torch.cuda.get_device_properties`` reports, for the two GPUs a learner usually meets."""

    def __init__(self, name: str, major: int, minor: int):
        self.name, self.major, self.minor = name, major, minor


@pytest.mark.parametrize("gpu, expected", [(_FakeGPU("Tesla T4", 7, 5), "fp16"), (_FakeGPU("Tesla V100-SXM2-16GB", 7, 0), "fp16"),
                                           (_FakeGPU("NVIDIA A100-SXM4-40GB", 8, 0), "bf16"), (_FakeGPU("NVIDIA L4", 8, 9), "bf16")])
def test_gpu_precision_follows_the_compute_capability(monkeypatch, gpu, expected):
    """A T4 answers True to is_bf16_supported() through emulation; it must still train in fp16."""
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: gpu)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert pick_precision(torch.device("cuda")) == expected
    assert pick_precision(torch.device("cuda"), "fp32") == "fp32"
    assert native_bf16(torch.device("cuda")) == (expected == "bf16")  # Muon's iterations: fp32 on a T4


def test_cpu_precision_follows_the_cpus_bf16_units(monkeypatch):
    """An AVX2 CPU (most laptops, Colab's CPU machines) emulates bf16: it trains in fp32."""
    for avx512_bf16, amx, expected in ((False, False, "fp32"), (True, False, "bf16"), (False, True, "bf16")):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda value=avx512_bf16: value)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda value=amx: value)
        assert pick_precision(torch.device("cpu")) == expected
        assert native_bf16(torch.device("cpu")) == (expected == "bf16")


def test_inference_imports_no_training_code():
    """`catsdogs.predict` (and the predict command) needs the model and a checkpoint, never an optimiser."""
    code = "import sys, catsdogs.predict; print(sorted(m for m in sys.modules if m in ('catsdogs.training', 'catsdogs.teacher')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=catsdogs.config.REPO_DIR)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_parameters_are_injected_after_the_parameters_cell_as_papermill_does(tmp_path):
    import nbformat

    from catsdogs.run import inject_parameters, parameter_names, run_notebooks

    params = nbformat.v4.new_code_cell("epochs = 30\nlr, other = 1e-3, 2\ncrop_scale = (0.35, 1.0)")
    params.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import os"), params,
                                         nbformat.v4.new_code_cell("print(epochs)")])
    assert parameter_names(nb) == {"epochs", "crop_scale"}  # plain assignments of one name
    assert inject_parameters(nb, {"epochs": 3, "crop_scale": (0.5, 1.0), "batch_size": 8}) == {
        "epochs": 3, "crop_scale": (0.5, 1.0)}
    assert nb.cells[2].metadata["tags"] == ["injected-parameters"]
    namespace: dict = {}
    for cell in nb.cells[1:3]:
        exec(cell.source, namespace)
    assert namespace["epochs"] == 3 and namespace["crop_scale"] == (0.5, 1.0) and namespace["lr"] == 1e-3

    folder = tmp_path / "notebooks"
    folder.mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[params]), folder / "01_x.ipynb")
    with pytest.raises(ValueError, match="no notebook run here has a parameter batch_sise"):
        run_notebooks(folder=folder, out_dir=tmp_path / "out", parameters={"batch_sise": 8})
    with pytest.raises(ValueError, match="--inplace"):
        run_notebooks(folder=folder, inplace=True, parameters={"epochs": 3})


def test_resume_loads_a_run_of_the_same_recipe_and_moves_another_aside(tmp_path):
    """resume() is a plain function: the model and optimisers come back as fit left them; a run of
    another recipe is kept aside, never overwritten."""
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset

    from catsdogs.training import fit, make_optimizers, make_schedulers, resume

    torch.manual_seed(0)
    data = TensorDataset((torch.rand(16, 3, 64, 64) * 255).to(torch.uint8), torch.arange(16) % 2)
    loader = DataLoader(data, batch_size=8)
    small_model = dict(image_size=64, patch_size=32, depth=1)
    config = TrainConfig(epochs=2, warmup_epochs=0, distill=0, optimizer="adamw")
    model = build_model(ModelConfig(**small_model))
    history = fit(model, loader, loader, config=config, device=CPU_FP32, run_dir=tmp_path / "run",
                  loss_fn=lambda logits, labels, x: F.cross_entropy(logits, labels))

    def fresh_run(recipe: TrainConfig):
        fresh = build_model(ModelConfig(**small_model))
        optimizers = make_optimizers(fresh, recipe)
        return fresh, dict(model=fresh, optimizers=optimizers, scaler=CPU_FP32.grad_scaler(), device=CPU_FP32,
                           schedulers=make_schedulers(optimizers, recipe, steps_per_epoch=len(loader)))

    fresh, parts = fresh_run(config)
    assert resume(tmp_path / "run" / "last.pt", {"train_config": config.to_dict()}, **parts) == history
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))
    assert parts["optimizers"][0].state_dict()["state"]  # Adam's moments came back too

    other = TrainConfig(epochs=3, warmup_epochs=0, distill=0, optimizer="adamw")
    _, parts = fresh_run(other)
    assert resume(tmp_path / "run" / "last.pt", {"train_config": other.to_dict()}, **parts) == []
    assert not (tmp_path / "run").exists() and len(list(tmp_path.glob("run.previous-*/last.pt"))) == 1
