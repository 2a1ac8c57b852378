"""Every adapter method through the same calls: attach, train, save, reload, merge; parameter reports; PEFT details."""

from __future__ import annotations

import json

import pytest
import torch

import subspace_hub
from subspace_hub.adapters import MARKER_FILE, attached_method
from subspace_hub.adapters.report import count_parameters, group_of, parameter_report
from subspace_hub.cli import main
from subspace_hub.errors import CheckpointError, CheckpointNotFoundError, ConfigError
from subspace_hub.testing import AdapterTests, check_adapter, check_adapter_lifecycle

METHODS = ["full", "lora", "pissa", "adalora", "psv", "subspace"]


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_saves_reloads_and_merges_on_the_reference_backbone(method):
    check_adapter(method)
    losses = check_adapter_lifecycle(method)
    assert losses["loss_after"] < losses["loss_before"]


class TestLoraConformance(AdapterTests):
    """The pytest class plugin authors subclass, run on a PEFT method."""

    adapter = "lora"
    options = {"rank": 4, "targets": ["qkv", "fc1"]}


FORGETFUL_PLUGIN = """
    from safetensors.torch import load_file, save_file

    from subspace_hub import AdapterSpec, hookimpl
    from subspace_hub.adapters import peft_methods

    def forgetful_save(model, folder):
        model.save_pretrained(str(folder))
        path = f"{folder}/adapter_model.safetensors"
        tensors = {k: (v * 0 if "lora_B" in k else v) for k, v in load_file(path).items()}
        save_file(tensors, path)

    @hookimpl
    def register_adapters(register):
        register(AdapterSpec("forgetful-lora", peft_methods.attach_lora, save=forgetful_save,
                             load=peft_methods.load_peft, merge=peft_methods.merge_peft,
                             example_options=lambda model: {"rank": 2}))
"""


def test_the_lifecycle_check_catches_an_adapter_that_does_not_reload(distributions):
    from subspace_hub.errors import ConformanceError

    distributions.add("forgetful-plugin", "forgetful_plugin", FORGETFUL_PLUGIN)
    with pytest.raises(ConformanceError, match=r"reloaded into a fresh backbone: outputs\['depth'\] differs by"):
        check_adapter_lifecycle("forgetful-lora")


def test_lora_defaults_and_options():
    model = subspace_hub.attach_adapter(
        subspace_hub.load_backbone("reference"), "lora", rank=4, targets="qkv", layers=[1]
    )
    config = model.peft_config["default"]
    assert config.r == 4 and config.lora_alpha == 8  # scale 2, as the paper
    assert sorted(config.target_modules) == ["blocks.1.attn.qkv"]
    record = attached_method(model)
    assert (record.method, record.options) == ("lora", {"rank": 4, "targets": "qkv", "layers": [1]})
    trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    assert trainable == [
        "base_model.model.blocks.1.attn.qkv.lora_A.default.weight",
        "base_model.model.blocks.1.attn.qkv.lora_B.default.weight",
    ]
    with pytest.raises(ConfigError, match="rank must be a positive integer, got 0"):
        subspace_hub.attach_adapter(subspace_hub.load_backbone("reference"), "lora", rank=0)


def test_pissa_starts_at_the_pretrained_outputs_and_saves_a_portable_lora(tmp_path):
    torch.manual_seed(0)
    base = subspace_hub.load_backbone("reference")
    images = torch.rand(1, 2, 3, 16, 16)
    with torch.no_grad():
        before = base(images)["depth"].clone()
    reference_weight = base.blocks[0].attn.qkv.weight.detach().clone()
    model = subspace_hub.attach_adapter(base, "pissa", rank=4)
    with torch.no_grad():
        torch.testing.assert_close(model(images)["depth"], before, atol=1e-5, rtol=1e-5)
    layer = model.base_model.model.blocks[0].attn.qkv
    # the adapter holds the top-4 singular directions of W; the frozen base keeps the residual
    singular = torch.linalg.svdvals(reference_weight)
    residual = torch.linalg.svdvals(layer.base_layer.weight.detach())
    torch.testing.assert_close(residual[: len(singular) - 4], singular[4:], atol=1e-4, rtol=1e-4)
    subspace_hub.save_adapter(model, tmp_path / "pissa")
    saved = json.loads((tmp_path / "pissa" / "adapter_config.json").read_text())
    assert saved["r"] == 8 and saved["init_lora_weights"] is True  # rank 2r LoRA on the untouched backbone


def test_pissa_initialises_conv2d_targets_from_the_flattened_kernel():
    torch.manual_seed(0)
    conv = torch.nn.Sequential(torch.nn.Conv2d(6, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1))
    x = torch.rand(2, 6, 5, 5)
    with torch.no_grad():
        before = conv(x).clone()
    weight = conv[0].weight.detach().clone()
    model = subspace_hub.attach_adapter(conv, "pissa", rank=3, targets=["0", "2"])
    with torch.no_grad():
        torch.testing.assert_close(model(x), before, atol=1e-5, rtol=1e-5)
    layer = model.base_model.model[0]
    delta = layer.get_delta_weight("default")
    U, S, Vh = torch.linalg.svd(weight.reshape(8, -1), full_matrices=False)
    top = (U[:, :3] * S[:3]) @ Vh[:3]
    torch.testing.assert_close(delta.reshape(8, -1), top, atol=1e-5, rtol=1e-5)


def test_adalora_needs_its_schedule_and_allocates_ranks():
    base = subspace_hub.load_backbone("reference")
    with pytest.raises(ConfigError, match="adalora needs total_step"):
        subspace_hub.attach_adapter(base, "adalora")
    with pytest.raises(ConfigError, match="tinit < total_step - tfinal"):
        subspace_hub.attach_adapter(base, "adalora", total_step=10, tinit=5, tfinal=5)
    model = subspace_hub.attach_adapter(base, "adalora", total_step=10, rank=2, init_rank=4)
    config = model.peft_config["default"]
    assert (config.init_r, config.target_r, config.tinit, config.tfinal) == (4, 2, 1, 2)
    spec = subspace_hub.plugins.get_adapter_spec("adalora")
    penalty = spec.regularizer(model)
    assert penalty.ndim == 0 and float(penalty.detach()) > 0  # random A/B are far from orthogonal
    penalty.backward()
    assert model.base_model.model.blocks[0].attn.qkv.lora_A["default"].grad is not None


def test_psv_freezes_the_singular_vectors_and_trains_the_core():
    model = subspace_hub.attach_adapter(subspace_hub.load_backbone("reference"), "psv", rank=4, targets="qkv")
    trainable = {n: p.shape for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(shape == (4, 4) for shape in trainable.values())
    assert parameter_report(model).trainable == 2 * 16


def test_psv_leaves_conv_and_too_narrow_targets_frozen_with_a_warning():
    net = torch.nn.Sequential(
        torch.nn.Linear(8, 3), torch.nn.Linear(3, 8), torch.nn.Conv2d(8, 8, 1), torch.nn.Linear(8, 8)
    )
    with (
        pytest.warns(UserWarning, match="adapts Linear layers only; 1 Conv2d target"),
        pytest.warns(
            UserWarning, match=r"rank 4 exceeds min\(in, out\) of 2 target\(s\), which stay frozen: 0 \(8 -> 3\)"
        ),
    ):
        model = subspace_hub.attach_adapter(net, "psv", rank=4, targets=["0", "1", "2", "3"])
    assert sorted(model.peft_config["default"].target_modules) == ["3"]


def test_save_and_load_errors(tmp_path):
    model = subspace_hub.load_backbone("reference")
    with pytest.raises(ConfigError, match="no adapter attached"):
        subspace_hub.save_adapter(model, tmp_path / "x")
    with pytest.raises(CheckpointNotFoundError, match=f"holds no saved adapter: expected {MARKER_FILE}"):
        subspace_hub.load_adapter(tmp_path)


def test_saved_adapter_folders_are_recognised_by_their_files_and_refused_with_reasons(tmp_path):
    """The marker wins, then a SubspaceAdapter config, then a PEFT config (any case of its type); each refusal says
    what was found and what is loadable."""
    from subspace_hub.adapters import _detect_method
    from subspace_hub.adapters.subspace.config import CONFIG_FILE
    from subspace_hub.errors import CheckpointError

    def folder(name: str, files: dict[str, object]) -> object:
        path = tmp_path / name
        path.mkdir()
        for file, content in files.items():
            (path / file).write_text(json.dumps(content))
        return path

    marked = {"method": "pissa", "options": {"rank": 4}, "backbone": {"name": "x"}}
    every = folder(
        "all",
        {MARKER_FILE: marked, CONFIG_FILE: {"backbone": {"name": "y"}}, "adapter_config.json": {"peft_type": "LORA"}},
    )
    assert _detect_method(every) == ("pissa", {"rank": 4}, {"name": "x"})
    assert _detect_method(folder("bare-marker", {MARKER_FILE: {"method": "lora", "options": None}})) == (
        "lora",
        {},
        None,
    )
    subspace = folder(
        "subspace", {CONFIG_FILE: {"backbone": {"name": "y"}}, "adapter_config.json": {"peft_type": "LORA"}}
    )
    assert _detect_method(subspace) == ("subspace", {}, {"name": "y"})
    for peft_type, method in (("LORA", "lora"), ("adalora", "adalora"), ("PSoft", "psv")):
        assert _detect_method(folder(f"peft-{peft_type}", {"adapter_config.json": {"peft_type": peft_type}})) == (
            method, {}, None
        )  # fmt: skip
    marker = folder("no-method", {MARKER_FILE: {"method": 3}})
    with pytest.raises(CheckpointError, match=rf"^{marker / MARKER_FILE} names no method; save the adapter again\.$"):
        _detect_method(marker)
    ia3 = folder("ia3", {"adapter_config.json": {"peft_type": "ia3"}})
    with pytest.raises(CheckpointError) as refused:
        _detect_method(ia3)
    assert str(refused.value) == (
        f"{ia3 / 'adapter_config.json'} holds a PEFT IA3 adapter; subspace-hub loads LoRA, AdaLoRA and PSOFT (psv) "
        "adapters."
    )
    with pytest.raises(CheckpointError, match=r"holds a PEFT unknown adapter"):
        _detect_method(folder("untyped", {"adapter_config.json": {}}))
    empty = folder("empty", {})
    with pytest.raises(CheckpointNotFoundError) as caught:
        _detect_method(empty)
    assert str(caught.value) == (
        f"{empty} holds no saved adapter: expected {MARKER_FILE} (subspace_hub.save_adapter), {CONFIG_FILE} "
        "(SubspaceAdapter.save_pretrained) or adapter_config.json (PEFT)."
    )


def test_the_parameter_report_reads_exactly():
    from subspace_hub.adapters.report import ParameterReport
    from subspace_hub.tables import format_table

    report = ParameterReport({"head": (0, 0), "blocks.0": (10, 1000), "embed": (5, 2000)}, "lora", ["core 4 x 4", "x"])
    rows = [("blocks.0", "10", "1,000", "1.00%"), ("embed", "5", "2,000", "0.25%"), ("head", "0", "0", "-")]
    rows.append(("total", "15", "3,000", "0.500%"))
    assert report.format() == "method: lora\n" + format_table(("GROUP", "TRAINABLE", "TOTAL", "SHARE"), rows) + (
        "\ncore 4 x 4\nx"
    )
    assert ParameterReport({"a": (1, 1)}).format() == format_table(
        ("GROUP", "TRAINABLE", "TOTAL", "SHARE"), [("a", "1", "1", "100.00%"), ("total", "1", "1", "100.000%")]
    )
    tied = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    tied[1].weight = tied[0].weight  # counted once, in the group that holds it first
    plain = parameter_report(tied)
    assert plain.method is None and plain.notes == [] and plain.groups == {"0": (6, 6), "1": (2, 2)}


def test_target_errors_name_what_was_asked_and_what_exists():
    from types import SimpleNamespace

    from subspace_hub.adapters.targets import resolve_targets

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), *[torch.nn.ReLU() for _ in range(6)], torch.nn.Linear(2, 2))
    bare = SimpleNamespace(target_groups={}, default_targets=(), frozen=())
    grouped = SimpleNamespace(target_groups={"first": "0", "last": "7"}, default_targets=(), frozen=("7",))

    def message(**kwargs: object) -> str:
        with pytest.raises(ConfigError) as caught:
            resolve_targets(model, **kwargs)
        return str(caught.value)

    assert message(spec=bare) == (
        "No adapter targets given and the model declares no default targets; pass targets=[...] with module-name "
        "regexes."
    )
    assert message(spec=grouped).endswith("with module-name regexes or groups (first, last).")
    assert message(targets=[], spec=bare) == (
        "targets is empty: name at least one target group or module-name pattern."
    )
    assert message(targets="last", spec=grouped) == (
        "Target 'last' matches no module of the model (modules under frozen parts are excluded; pass frozen=() to "
        "include them). Known target groups: first, last."
    )
    assert (
        message(targets="9", spec=bare, layers=[2, 1]) == "Target '9' matches no module of the model in layers [1, 2]."
    )
    assert message(targets=r"[1-6]", spec=bare) == (
        "Target '[1-6]' matches modules that are not Linear or Conv2d: 1 (ReLU), 2 (ReLU), 3 (ReLU), 4 (ReLU), "
        "5 (ReLU) and 1 more. Narrow the pattern to the layers inside them."
    )
    assert message(targets=r"[1-5]", spec=bare).endswith("5 (ReLU). Narrow the pattern to the layers inside them.")
    assert resolve_targets(model, "last", spec=grouped, frozen=()) == ["7"]
    linear = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    assert resolve_targets(linear, ".*", spec=bare) == ["0", "1"]  # the root module (named "") is never a target


def test_adalora_defaults_schedule_and_orthogonality_penalty():
    """The documented defaults (rank 8 from 12, alpha 2 x init_rank, allocation between the first 10 % and the last
    20 % of the steps, delta_t 1, weight 0.5), what is passed through, the refusals, and the penalty by hand."""
    from subspace_hub.adapters.peft_methods import adalora_regularizer

    for steps in (None, 0, -1):
        with pytest.raises(ConfigError, match=r"^adalora needs total_step=<number of training steps>: it schedules "):
            subspace_hub.attach_adapter(subspace_hub.load_backbone("reference"), "adalora", total_step=steps)
    with pytest.raises(ConfigError, match=r"^init_rank must be a positive integer, got 0\.$"):
        subspace_hub.attach_adapter(subspace_hub.load_backbone("reference"), "adalora", total_step=10, init_rank=0)
    torch.manual_seed(0)
    adapted = subspace_hub.attach_adapter(subspace_hub.load_backbone("reference"), "adalora", total_step=105)
    config = adapted.peft_config["default"]
    assert (config.init_r, config.target_r, config.lora_alpha, config.deltaT, config.orth_reg_weight) == (
        12,
        8,
        24,
        1,
        0.5,
    )
    assert (config.tinit, config.tfinal, config.total_step) == (10, 21, 105) and isinstance(config.tinit, int)
    assert isinstance(config.tfinal, int)
    one = subspace_hub.attach_adapter(subspace_hub.load_backbone("reference"), "adalora", total_step=1)
    assert (one.peft_config["default"].tinit, one.peft_config["default"].tfinal) == (0, 0)  # one step is a schedule
    assert attached_method(adapted).method == "adalora"
    passed = subspace_hub.attach_adapter(
        subspace_hub.load_backbone("reference"), "adalora", total_step=50, targets=["blocks.1.mlp.fc1"], alpha=5.0,
        peft_options={"lora_dropout": 0.25}, delta_t=3, orth_reg_weight=0.1,
    )  # fmt: skip
    options = passed.peft_config["default"]
    assert (options.deltaT, options.orth_reg_weight) == (3, 0.1)
    assert (
        set(options.target_modules) == {"blocks.1.mlp.fc1"}
        and options.lora_alpha == 5.0
        and options.lora_dropout == 0.25
    )
    layered = subspace_hub.attach_adapter(
        subspace_hub.load_backbone("reference"), "adalora", total_step=50, targets=r"blocks\.(?P<layer>\d+)\.mlp\.fc1",
        layers=[0],
    )  # fmt: skip
    assert set(layered.peft_config["default"].target_modules) == {"blocks.0.mlp.fc1"}
    with torch.no_grad():  # away from orthonormal, so every term counts
        for name, param in adapted.named_parameters():
            if ".lora_A." in name or ".lora_B." in name:
                param.normal_()
    terms = []
    for name, param in adapted.named_parameters():
        if ".lora_A." in name:
            terms.append(torch.linalg.matrix_norm(param @ param.T - torch.eye(param.shape[0])))
        elif ".lora_B." in name:
            terms.append(torch.linalg.matrix_norm(param.T @ param - torch.eye(param.shape[1])))
    assert len(terms) == 2 * 8  # A and B of 8 adapted layers
    torch.testing.assert_close(adalora_regularizer(adapted), 0.5 * torch.stack(terms).mean())
    for param in adapted.parameters():
        param.requires_grad_(False)
    none = adalora_regularizer(adapted)
    assert none.shape == () and float(none) == 0.0


def test_a_saved_peft_adapter_names_the_base_it_adapts(tmp_path):
    """adapter_config.json names the pretrained weights (or, for random weights, the registered backbone) and their
    revision, in the file and in the live config."""
    import dataclasses

    from subspace_hub.provenance import record_of

    model = subspace_hub.attach_adapter(subspace_hub.load_backbone("reference"), "lora", rank=2)
    subspace_hub.save_adapter(model, tmp_path / "random")
    saved = json.loads((tmp_path / "random" / "adapter_config.json").read_text())
    assert (saved["base_model_name_or_path"], saved["revision"]) == ("reference", None)
    record = record_of(model)
    record.build = dataclasses.replace(record.build, pretrained="org/reference-weights", revision="v1.2")
    subspace_hub.save_adapter(model, tmp_path / "pretrained")
    saved = json.loads((tmp_path / "pretrained" / "adapter_config.json").read_text())
    assert (saved["base_model_name_or_path"], saved["revision"]) == ("org/reference-weights", "v1.2")
    live = model.peft_config["default"]
    assert (live.base_model_name_or_path, live.revision) == ("org/reference-weights", "v1.2")


def test_lora_pissa_and_psv_defaults_and_what_they_pass_through():
    """The documented defaults (rank 16, alpha 2 x rank, no dropout, no rsLoRA; PiSSA's init recorded; PSV with
    full SVD and none of PSOFT's extras) and every option reaching PEFT's config."""

    def config(method: str, **options: object) -> object:
        model = subspace_hub.attach_adapter(subspace_hub.load_backbone("reference"), method, **options)
        return model.peft_config["default"]

    one_layer = {"targets": r"blocks\.(?P<layer>\d+)\.mlp\.fc1", "layers": [1]}
    lora = config("lora")
    assert (lora.r, lora.lora_alpha, lora.lora_dropout, lora.use_rslora) == (16, 32, 0.0, False)
    lora = config(
        "lora", rank=4, alpha=3.0, dropout=0.1, use_rslora=True, peft_options={"bias": "lora_only"}, **one_layer
    )
    assert (lora.r, lora.lora_alpha, lora.lora_dropout, lora.use_rslora, lora.bias) == (4, 3.0, 0.1, True, "lora_only")
    assert set(lora.target_modules) == {"blocks.1.mlp.fc1"}
    pissa = config("pissa")
    assert (pissa.r, pissa.lora_alpha, pissa.init_lora_weights) == (16, 32, "pissa")
    pissa = config("pissa", rank=4, alpha=3.0, niter=3, peft_options={"lora_dropout": 0.2}, **one_layer)
    assert (pissa.r, pissa.lora_alpha, pissa.init_lora_weights, pissa.lora_dropout) == (4, 3.0, "pissa_niter_3", 0.2)
    assert set(pissa.target_modules) == {"blocks.1.mlp.fc1"}
    psv = config("psv")
    assert (psv.r, psv.psoft_alpha, psv.psoft_svd) == (16, 32, "full")
    assert psv.psoft_orth is False and psv.psoft_mag_a is False and psv.psoft_mag_b is False
    psv = config("psv", rank=4, alpha=3.0, svd="lowrank", peft_options={"psoft_dropout": 0.1}, **one_layer)
    assert (psv.r, psv.psoft_alpha, psv.psoft_svd, psv.psoft_dropout) == (4, 3.0, "lowrank", 0.1)
    assert set(psv.target_modules) == {"blocks.1.mlp.fc1"}


def test_rank_checks_narrow_targets_and_reloaded_adapters(tmp_path):
    """Rank 1 is a rank and True is not; PiSSA leaves layers narrower than its rank frozen and says which; a
    reloaded adapter trains again; an unreadable PEFT folder is refused with PEFT's reason."""
    reference = subspace_hub.load_backbone
    assert subspace_hub.attach_adapter(reference("reference"), "lora", rank=1).peft_config["default"].r == 1
    with pytest.raises(ConfigError, match=r"^rank must be a positive integer, got True\.$"):
        subspace_hub.attach_adapter(reference("reference"), "lora", rank=True)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), *[torch.nn.Linear(64, 8) for _ in range(4)])
    with pytest.warns(UserWarning) as caught:
        adapted = subspace_hub.attach_adapter(model, "pissa", rank=16, targets=r"\d")
    assert [str(w.message) for w in caught if "exceeds" in str(w.message)] == [
        "pissa rank 16 exceeds min(in, out) of 4 target(s), which stay frozen: 1 (64 -> 8), 2 (64 -> 8), 3 (64 -> 8) "
        "(+1 more)"
    ]
    assert set(adapted.peft_config["default"].target_modules) == {"0"}
    exact = subspace_hub.attach_adapter(reference("reference"), "pissa", rank=32)  # rank == min(in, out): allowed
    assert len(exact.peft_config["default"].target_modules) == 8
    with (
        pytest.raises(
            ConfigError, match=r"^pissa rank 33 exceeds min\(in, out\) of every target; choose a smaller rank\.$"
        ),
        pytest.warns(UserWarning),
    ):
        subspace_hub.attach_adapter(reference("reference"), "pissa", rank=33)
    trained = subspace_hub.attach_adapter(reference("reference"), "lora", rank=2)
    subspace_hub.save_adapter(trained, tmp_path / "lora")
    reloaded = subspace_hub.load_adapter(tmp_path / "lora", model=reference("reference"))
    assert all(p.requires_grad for n, p in reloaded.named_parameters() if "lora_" in n)
    (tmp_path / "lora" / "adapter_model.safetensors").write_bytes(b"not a tensor file")  # a damaged download
    refusal = rf"^Cannot load the PEFT adapter in {tmp_path / 'lora'}: \w+: .+\. Check its adapter_config\.json, or "
    with pytest.raises(CheckpointError, match=refusal + r"save the adapter again\.$"):
        subspace_hub.load_adapter(tmp_path / "lora", model=reference("reference"))


def test_adalora_training_state_carries_the_rank_pattern_as_booleans():
    """After the final allocation AdaLoRA keeps a rank pattern outside its parameters; a checkpoint carries it (the
    engine's resume test stops before that point)."""
    from subspace_hub.adapters.peft_methods import adalora_load_training_state, adalora_training_state

    def adalora() -> torch.nn.Module:
        return subspace_hub.attach_adapter(subspace_hub.load_backbone("reference"), "adalora", total_step=20)

    source = adalora()
    assert not any(k.startswith("rank_pattern.") for k in adalora_training_state(source))  # none before allocation
    source.peft_config["default"].rank_pattern = {"blocks.0.attn.qkv.lora_E": [1, 0, 1, 1]}
    state = adalora_training_state(source)
    mask = state["rank_pattern.blocks.0.attn.qkv.lora_E"]
    assert mask.dtype == torch.bool and mask.tolist() == [True, False, True, True]
    target = adalora()
    adalora_load_training_state(target, state)
    assert target.peft_config["default"].rank_pattern == {"blocks.0.attn.qkv.lora_E": [True, False, True, True]}


def test_pissa_on_a_convolution_with_the_fast_svd_keeps_the_outputs_and_takes_the_top_directions():
    torch.manual_seed(0)
    conv = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3))
    with torch.no_grad():  # a kernel with a clear top-2 spectrum, so the fast SVD finds it
        u, v = torch.linalg.qr(torch.randn(8, 8))[0], torch.linalg.qr(torch.randn(36, 36))[0]
        spectrum = torch.tensor([10.0, 6.0, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
        conv[0].weight.copy_(((u * spectrum) @ v[:, :8].T).reshape(8, 4, 3, 3))
    original = conv[0].weight.detach().clone()
    x = torch.randn(2, 4, 9, 9)
    expected = conv(x)
    adapted = subspace_hub.attach_adapter(conv, "pissa", rank=2, niter=4, targets="0")
    torch.testing.assert_close(adapted(x), expected, atol=1e-5, rtol=1e-5)  # PiSSA starts at the base model
    layer = adapted.base_model.model[0]
    update = (
        layer.scaling["default"]
        * layer.lora_B["default"].weight.reshape(8, 2)
        @ layer.lora_A["default"].weight.reshape(2, 36)
    )
    U, S, Vh = torch.linalg.svd(original.reshape(8, 36))
    torch.testing.assert_close(update, (U[:, :2] * S[:2]) @ Vh[:2], atol=1e-3, rtol=1e-3)  # the top-2 directions


def test_load_adapter_rebuilds_the_recorded_backbone(tmp_path):
    """Without model=, the saved marker names the backbone, its config and its pretrained weights."""
    torch.manual_seed(0)
    base = subspace_hub.load_backbone("reference", config={"depth": 3})
    subspace_hub.save_backbone(base, tmp_path / "pretrained")
    base = subspace_hub.load_backbone("reference", pretrained=tmp_path / "pretrained")
    model = subspace_hub.attach_adapter(base, "lora", rank=2)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_()
    images = torch.rand(1, 2, 3, 16, 16)
    with torch.no_grad():
        expected = model(images)["depth"]
    subspace_hub.save_adapter(model, tmp_path / "adapter")
    marker = json.loads((tmp_path / "adapter" / MARKER_FILE).read_text())
    assert marker["method"] == "lora" and marker["backbone"]["name"] == "reference"
    assert marker["backbone"]["config"]["depth"] == 3 and marker["library_version"] == subspace_hub.__version__
    reloaded = subspace_hub.load_adapter(tmp_path / "adapter")
    assert attached_method(reloaded).method == "lora"
    with torch.no_grad():
        torch.testing.assert_close(reloaded(images)["depth"], expected)


def test_parameter_report_counts_per_group():
    model = subspace_hub.attach_adapter(subspace_hub.load_backbone("reference"), "lora", rank=2, targets=["qkv"])
    report = parameter_report(model)
    assert report.method == "lora"
    # qkv is 32 -> 96: A is 2x32 and B 96x2 per block
    assert report.groups["blocks.0"][0] == report.groups["blocks.1"][0] == 2 * 32 + 96 * 2
    assert report.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert report.total == sum(p.numel() for p in model.parameters())
    table = report.format()
    assert table.splitlines()[0] == "method: lora" and "GROUP" in table and table.splitlines()[-1].startswith("total")
    assert group_of("base_model.model.blocks.0.attn.qkv.lora_A.default.weight") == "blocks.0"
    assert group_of("blocks.3.mlp.fc1.base_layer.weight") == "blocks.3"
    assert group_of("head.weight") == "head"


def test_count_parameters_on_the_meta_device():
    assert count_parameters("reference").trainable == count_parameters("reference").total
    lora = count_parameters("reference", "lora", options={"rank": 2, "targets": "qkv"})
    assert lora.trainable == 2 * (2 * 32 + 96 * 2)


def test_cli_params(capsys):
    assert (
        main(["params", "reference", "--lora-rank", "2", "--psv-rank", "2", "--subspace-dim", "2", "--targets", "qkv"])
        == 0
    )
    out = capsys.readouterr().out
    assert "lora / pissa r=2" in out and "psv r=2" in out and "subspace 2x2" in out
    assert main(["params", "reference", "--set", "depth=4", "--lora-rank", "2", "--targets", "qkv", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["config"]["depth"] == 4
    assert {c["method"]: c["trainable"] for c in data["counts"]}["lora / pissa r=2"] == 4 * (2 * 32 + 96 * 2)
    assert main(["params", "reference", "--set", "depth"]) == 1
    assert "must look like KEY=VALUE" in capsys.readouterr().err


def test_load_adapter_refuses_to_rebuild_random_weights(tmp_path):
    model = subspace_hub.attach_adapter(subspace_hub.load_backbone("reference"), "lora", rank=2)
    subspace_hub.save_adapter(model, tmp_path / "adapter")
    with pytest.raises(ConfigError, match="random initial weights .* pass model=") as info:
        subspace_hub.load_adapter(tmp_path / "adapter")
    assert str(info.value).startswith(f"{tmp_path / 'adapter'} was trained on a 'reference' backbone")


def narrow_net() -> torch.nn.Module:
    """One Linear 8 -> 8, three 8 -> 3 (narrower than rank 4) and a Conv2d."""
    return torch.nn.Sequential(
        torch.nn.Linear(8, 8), *[torch.nn.Linear(8, 3) for _ in range(3)], torch.nn.Conv2d(8, 8, 1)
    )


def test_psv_warnings_and_refusals_read_exactly():
    with pytest.warns(UserWarning) as caught:
        model = subspace_hub.attach_adapter(narrow_net(), "psv", rank=4, targets=["0", "1", "2", "3", "4"])
    assert [str(w.message) for w in caught] == [
        "psv adapts Linear layers only; 1 Conv2d target(s) stay frozen (e.g. 4).",
        "psv rank 4 exceeds min(in, out) of 3 target(s), which stay frozen: 1 (8 -> 3), 2 (8 -> 3), 3 (8 -> 3)",
    ]  # three narrow modules are all named, with no "(+0 more)"
    assert model.peft_config["default"].target_modules == {"0"}
    with (
        pytest.raises(ConfigError, match=r"^psv adapts Linear layers only, and none of the targets is one\.$"),
        pytest.warns(UserWarning),
    ):
        subspace_hub.attach_adapter(narrow_net(), "psv", rank=2, targets=["4"])


def test_method_warnings_point_at_the_caller_of_attach_adapter():
    """Through each method's helpers (PSV: none, PiSSA: the LoRA helper) to the line that called attach_adapter."""
    for method, targets in (("psv", ["0", "1", "4"]), ("pissa", ["0", "1"])):
        with pytest.warns(UserWarning) as caught:
            subspace_hub.attach_adapter(narrow_net(), method, rank=4, targets=targets)
        ours = [w for w in caught if str(w.message).startswith(method)]
        assert ours and {w.filename for w in ours} == {__file__}, (method, [(w.filename, w.lineno) for w in ours])


def test_save_peft_on_a_plain_peft_model_and_an_adalora_model_pruned_to_rank_zero(tmp_path):
    """A PeftModel made without attach_adapter saves as PEFT saves it; an AdaLoRA module pruned to rank 0 saves
    without PEFT's ZeRO-3 shape warning (it does not apply); adapter_config.json is indented and sorted."""
    import warnings

    from peft import LoraConfig, get_peft_model

    from subspace_hub.adapters.peft_methods import save_peft

    plain = get_peft_model(torch.nn.Sequential(torch.nn.Linear(8, 8)), LoraConfig(r=2, target_modules=["0"]))
    save_peft(plain, tmp_path / "plain")
    assert json.loads((tmp_path / "plain" / "adapter_config.json").read_text())["r"] == 2
    model = subspace_hub.attach_adapter(
        subspace_hub.load_backbone("reference"), "adalora", rank=2, init_rank=4, total_step=10
    )
    names = [n.removeprefix("base_model.model.") for n, m in model.named_modules() if hasattr(m, "lora_E")]
    model.peft_config["default"].rank_pattern = {
        f"{name}.lora_E.default": [False] * 4 if i == 0 else [True, True, False, False] for i, name in enumerate(names)
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        save_peft(model, tmp_path / "adalora")
    text = (tmp_path / "adalora" / "adapter_config.json").read_text()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True)


def test_an_adapter_of_another_size_is_refused_with_peft_reason_on_one_line(tmp_path):
    subspace_hub.save_adapter(subspace_hub.attach_adapter(subspace_hub.load_backbone("reference"), "lora"), tmp_path)
    with pytest.raises(CheckpointError) as refused:
        subspace_hub.load_adapter(tmp_path, model=subspace_hub.load_backbone("reference", config="small"))
    message = str(refused.value)
    head = f"Cannot load the PEFT adapter in {tmp_path}: RuntimeError: "
    tail = ". Check its adapter_config.json, or save the adapter again."
    assert message.startswith(head) and message.endswith(tail)
    reason = message[len(head) : -len(tail)]
    assert len(reason) == 300 and "\n" not in reason and "  " not in reason  # PEFT's reason, cut at 300 characters
    assert reason.startswith("Error(s) in loading state_dict for PeftModel: size mismatch for base_model.model.")


def test_the_adapter_card_says_what_it_adapts_how_to_load_it_and_its_licence(tmp_path):
    from huggingface_hub import ModelCard

    from subspace_hub.adapters import write_adapter_card
    from subspace_hub.provenance import BuildInfo

    torch.manual_seed(0)
    subspace_hub.save_backbone(subspace_hub.load_backbone("reference"), tmp_path / "weights")
    model = subspace_hub.attach_adapter(
        subspace_hub.load_backbone("reference", pretrained=tmp_path / "weights"), "lora"
    )
    subspace_hub.save_adapter(model, tmp_path / "a")
    version = subspace_hub.__version__
    assert (
        (tmp_path / "a" / "README.md").read_text()
        == f"""---
library_name: subspace-hub
license: apache-2.0
tags:
- subspace-hub
- lora
- reference
---

# `lora` adapter of `reference`

{4 * 8 * (128 + 64 + 160 + 160):,} trainable parameters, trained with subspace-hub {version} on the
weights `{tmp_path / "weights"}`. Method options: `{{}}`.

```python
import subspace_hub

model = subspace_hub.load_adapter("<this folder or repo>")  # rebuilds the backbone it adapts, then loads it
```

`subspace_hub_adapter.json` records the method, its options and the backbone (name, config, weights, revision).
The weights it adapts are licensed apache-2.0; so is what you derive from them."""
    )
    # weights from a Hub repo (not a local folder) become the card's base_model
    write_adapter_card(tmp_path / "a", "psv", {"rank": 3}, BuildInfo("reference", pretrained="org/base"), model)
    card = ModelCard.load(tmp_path / "a" / "README.md")
    assert card.data.base_model == "org/base" and card.data.tags == ["subspace-hub", "psv", "reference"]
    assert (
        "# `psv` adapter of `reference`" in card.text
        and 'weights `org/base`. Method options: `{"rank": 3}`' in card.text
    )
    # a module subspace-hub did not build: no backbone, weights or licence to name
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    subspace_hub.save_adapter(subspace_hub.attach_adapter(net, "lora", rank=2, targets=["0"]), tmp_path / "plain")
    card = ModelCard.load(tmp_path / "plain" / "README.md")
    assert card.data.to_dict() == {"library_name": "subspace-hub", "tags": ["subspace-hub", "lora"]}
    assert "# `lora` adapter of `unknown`\n\n16 trainable parameters, trained with subspace-hub" in card.text
    assert "licensed" not in card.text and "on the\nweights" not in card.text


def test_the_marker_of_a_module_without_a_backbone_and_the_refusals_to_reload_it(tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    folder = tmp_path / "x" / "y" / "plain"  # missing parents are made
    subspace_hub.save_adapter(subspace_hub.attach_adapter(net, "lora", rank=2, targets=["0"]), folder)
    marker = {"method": "lora", "options": {"rank": 2, "targets": ["0"]}, "backbone": None}
    assert (folder / MARKER_FILE).read_text() == json.dumps(
        {**marker, "library_version": subspace_hub.__version__}, indent=2
    ) + "\n"
    with pytest.raises(ConfigError) as info:
        subspace_hub.load_adapter(folder)
    assert str(info.value) == f"{folder} does not record its backbone; pass model=<a freshly built backbone>."
    with pytest.raises(ConfigError) as info:
        subspace_hub.load_adapter(folder, revision="v1")
    assert str(info.value) == f"revision='v1' only applies to Hub repos, but {folder} is a local folder."


def test_full_fine_tuning_of_a_plain_module_merges_to_a_model_without_a_record(tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    for param in net.parameters():
        param.requires_grad_(False)
    model = subspace_hub.attach_adapter(net, "full")  # no backbone spec: nothing is kept frozen
    assert all(p.requires_grad for p in model.parameters()) and attached_method(model).method == "full"
    merged = subspace_hub.merge_adapter(model)
    with pytest.raises(ConfigError) as info:
        attached_method(merged)
    assert str(info.value) == "This model has no adapter attached by subspace_hub.attach_adapter or load_adapter."
    # fine-tuned weights that do not fit the model name where they came from
    subspace_hub.save_adapter(
        subspace_hub.attach_adapter(subspace_hub.load_backbone("reference"), "full"), tmp_path / "f"
    )
    with pytest.raises(CheckpointError, match=f"^Fine-tuned weights in {tmp_path / 'f'} does not fit the model: 12"):
        subspace_hub.load_adapter(tmp_path / "f", model=subspace_hub.load_backbone("reference", config={"depth": 3}))


NOOP_PLUGIN = """
    from subspace_hub import AdapterSpec, hookimpl

    @hookimpl
    def register_adapters(register):
        register(AdapterSpec("noop", lambda model: model))
        register(AdapterSpec("anything", lambda model, **options: model))
"""


def test_a_method_without_options_save_load_or_merge_refuses_each_by_name(distributions, tmp_path):
    from subspace_hub.adapters import write_marker

    distributions.add("noop-plugin", "noop_plugin", NOOP_PLUGIN)
    model = subspace_hub.load_backbone("reference")
    with pytest.raises(ConfigError) as info:
        subspace_hub.attach_adapter(model, "noop", rank=2, scale=1.0)
    assert str(info.value) == "Adapter 'noop' does not take option(s) rank, scale; it takes: none."
    with pytest.raises(ConfigError) as info:
        subspace_hub.attach_adapter(model, "lora", bogus=1)
    assert str(info.value) == (
        "Adapter 'lora' does not take option(s) bogus; it takes: targets, layers, rank, alpha, dropout, use_rslora, "
        "peft_options."
    )
    # options that do not survive JSON are left out of the record, and only those
    anything = subspace_hub.attach_adapter(model, "anything", bundle=object(), rank=2)
    assert attached_method(anything).options == {"rank": 2}
    noop = subspace_hub.attach_adapter(subspace_hub.load_backbone("reference"), "noop")
    with pytest.raises(ConfigError) as info:
        subspace_hub.save_adapter(noop, tmp_path / "noop")
    assert str(info.value) == "Adapter 'noop' does not support saving."
    with pytest.raises(ConfigError) as info:
        subspace_hub.merge_adapter(noop)
    assert str(info.value) == "Adapter 'noop' does not support merging."
    (tmp_path / "noop").mkdir()
    write_marker(tmp_path / "noop", "noop", {}, None)
    with pytest.raises(ConfigError) as info:
        subspace_hub.load_adapter(tmp_path / "noop", model=model)
    assert str(info.value) == "Adapter 'noop' does not support loading."
