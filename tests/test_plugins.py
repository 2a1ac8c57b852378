"""The plugin host: builtins, entry-point discovery, failure isolation, conflicts and the environment switches."""

from __future__ import annotations

import re
import sys
import types

import pytest
import torch

import subspace_hub
from subspace_hub import hookspecs, plugins
from subspace_hub.errors import PluginConflictError, PluginLoadError, PluginWarning, UnknownComponentError

BROKEN_IMPORT = "import subspace_hub\nraise RuntimeError('the plugin is broken at import')\n"


def test_builtins_register_reference_backbone_and_full_adapter():
    infos = {p.name: p for p in subspace_hub.list_plugins()}
    assert infos["subspace_hub.builtin.backbones"].components == {"backbone": ("reference",)}
    assert infos["subspace_hub.builtin.adapters"].components == {
        "adapter": ("full", "lora", "pissa", "adalora", "psv", "subspace")
    }
    assert all(p.builtin and p.distribution == "subspace-hub" for p in infos.values())
    assert "reference" in subspace_hub.list_components("backbone")


def test_third_party_distribution_is_discovered_and_usable(distributions, good_plugin):
    distributions.add("subspace-hub-tiny", "subspace_hub_tiny", good_plugin(), version="2.3.1", entry_point="tiny")
    info = {p.name: p for p in subspace_hub.list_plugins()}["tiny"]
    assert (info.distribution, info.version, info.source) == ("subspace-hub-tiny", "2.3.1", "entry point")
    assert info.components == {"backbone": ("tiny-third-party",), "metric": ("third-party-mae",)}
    assert info.hooks == ("register_backbones", "register_metrics")

    model = subspace_hub.load_backbone("tiny-third-party", config={"width": 8})
    assert model.fc1.out_features == 8
    out = model(torch.rand(1, 2, 3, 4, 4))
    assert out["depth"].shape == (1, 2, 1)
    metric = subspace_hub.get_metric("third-party-mae")
    assert metric(1.5, 1.0) == pytest.approx(0.5)
    assert metric.higher_is_better is False


def test_plugins_load_lazily_and_once(distributions):
    distributions.add(
        "subspace-hub-counter",
        "subspace_hub_counter",
        """
        import builtins
        from subspace_hub import AdapterSpec, hookimpl
        builtins.COUNTER_IMPORTS = getattr(builtins, "COUNTER_IMPORTS", 0) + 1
        CALLS = []

        @hookimpl
        def register_adapters(register):
            CALLS.append(1)
            register(AdapterSpec("noop", lambda model: model))
        """,
    )
    import builtins

    builtins.COUNTER_IMPORTS = 0
    assert "subspace_hub_counter" not in sys.modules  # nothing is loaded before the first lookup
    for _ in range(3):
        subspace_hub.list_components("adapter")
        subspace_hub.list_plugins()
    assert builtins.COUNTER_IMPORTS == 1
    assert sys.modules["subspace_hub_counter"].CALLS == [1]
    del builtins.COUNTER_IMPORTS


def test_broken_import_is_recorded_and_skipped(distributions, good_plugin):
    distributions.add("subspace-hub-broken", "subspace_hub_broken", BROKEN_IMPORT, version="0.0.1")
    distributions.add("subspace-hub-tiny", "subspace_hub_tiny", good_plugin())
    with pytest.warns(PluginWarning, match="subspace_hub_broken.*RuntimeError: the plugin is broken at import"):
        infos = {p.name: p for p in subspace_hub.list_plugins()}
    broken = infos["subspace_hub_broken"]
    assert broken.failed
    assert (broken.distribution, broken.version) == ("subspace-hub-broken", "0.0.1")
    assert broken.error == "import failed: RuntimeError: the plugin is broken at import"
    assert broken.components == {}
    # everything else keeps working
    assert subspace_hub.load_backbone("reference") is not None
    assert subspace_hub.get_metric("third-party-mae")(2.0, 1.0) == 1.0


def test_strict_mode_raises_for_a_broken_plugin(distributions, monkeypatch):
    distributions.add("subspace-hub-broken", "subspace_hub_broken", BROKEN_IMPORT, version="0.0.1")
    monkeypatch.setenv(plugins.ENV_STRICT, "1")
    with pytest.raises(
        PluginLoadError, match=r"subspace-hub-broken 0\.0\.1.*RuntimeError: the plugin is broken"
    ) as info:
        subspace_hub.list_plugins()
    assert isinstance(info.value.__cause__, RuntimeError)
    # still raising on the next lookup: a strict process never runs with the plugin silently missing
    with pytest.raises(PluginLoadError):
        subspace_hub.load_backbone("reference")


def test_hook_that_raises_discards_the_whole_plugin(distributions):
    distributions.add(
        "subspace-hub-half",
        "subspace_hub_half",
        """
        from subspace_hub import AdapterSpec, MetricSpec, hookimpl

        @hookimpl
        def register_adapters(register):
            register(AdapterSpec("half-adapter", lambda model: model))

        @hookimpl
        def register_metrics(register):
            register(MetricSpec("half-metric", lambda p, g: 0.0, higher_is_better=True))
            raise ValueError("metric registry exploded")
        """,
    )
    with pytest.warns(PluginWarning):
        info = {p.name: p for p in subspace_hub.list_plugins()}["subspace_hub_half"]
    assert info.error == "register_metrics raised: ValueError: metric registry exploded"
    assert "half-adapter" not in subspace_hub.list_components("adapter")
    assert "half-metric" not in subspace_hub.list_components("metric")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "from subspace_hub import hookimpl\n@hookimpl\ndef register_backbone(register):\n    pass\n",
            "invalid hook: LookupError: unknown hook 'register_backbone'; did you mean 'register_backbones'?",
        ),
        (
            "from subspace_hub import hookimpl\n@hookimpl\ndef register_metrics(register, extra):\n    pass\n",
            "invalid hook: PluginValidationError",
        ),
        (
            "from subspace_hub import hookimpl, MetricSpec\n@hookimpl\ndef register_metrics(register):\n"
            "    return [MetricSpec('m', lambda p, g: 0.0)]\n",
            "register_metrics returned a value: TypeError: hooks must call register(spec) and return None, got list",
        ),
        (
            "from subspace_hub import hookimpl, MetricSpec\n@hookimpl\ndef register_backbones(register):\n"
            "    register(MetricSpec('m', lambda p, g: 0.0))\n",
            "register_backbones raised: SpecError: register_backbones expects BackboneSpec objects, got MetricSpec; "
            "register it from register_metrics.",
        ),
        (
            "from subspace_hub import hookimpl, BackboneSpec\n@hookimpl\ndef register_backbones(register):\n"
            "    register(BackboneSpec('Bad Name', build=dict))\n",
            "register_backbones raised: SpecError: BackboneSpec.name 'Bad Name' is not a valid slug",
        ),
        (
            "from subspace_hub import hookimpl\n@hookimpl(wrapper=True)\ndef register_metrics(register):\n"
            "    return (yield)\n",
            "invalid hook: TypeError: register_metrics cannot be a wrapper",
        ),
    ],
    ids=["typo-hook", "unknown-argument", "returns-value", "wrong-spec-kind", "bad-slug", "wrapper"],
)
def test_malformed_plugins_are_reported_with_a_precise_error(distributions, source, expected):
    distributions.add("subspace-hub-bad", "subspace_hub_bad", source)
    with pytest.warns(PluginWarning):
        info = {p.name: p for p in subspace_hub.list_plugins()}["subspace_hub_bad"]
    assert info.error.startswith(expected)
    assert "reference" in subspace_hub.list_components("backbone")


def test_duplicate_component_names_skip_the_second_plugin_naming_both_distributions(distributions, good_plugin):
    distributions.add("subspace-hub-alpha", "subspace_hub_alpha", good_plugin(metric="alpha-mae"), version="1.0")
    distributions.add("subspace-hub-beta", "subspace_hub_beta", good_plugin(metric="beta-mae"), version="2.0")
    with pytest.warns(PluginWarning):
        assert "tiny-third-party" in subspace_hub.list_components("backbone")  # the first one's, still usable
    failed = {p.name: p for p in subspace_hub.list_plugins() if p.failed}
    assert list(failed) == ["subspace_hub_beta"] and "alpha-mae" in subspace_hub.list_components("metric")
    message = failed["subspace_hub_beta"].error
    assert "backbone name 'tiny-third-party' is registered twice" in message
    assert "subspace-hub-alpha 1.0" in message and "subspace-hub-beta 2.0" in message
    assert plugins.ENV_LOAD_PLUGINS in message


def test_strict_mode_raises_on_a_conflict(distributions, good_plugin, monkeypatch):
    monkeypatch.setenv(plugins.ENV_STRICT, "1")
    distributions.add("subspace-hub-alpha", "subspace_hub_alpha", good_plugin(metric="alpha-mae"))
    distributions.add("subspace-hub-beta", "subspace_hub_beta", good_plugin(metric="beta-mae"))
    with pytest.raises(PluginConflictError, match="registered twice"):
        subspace_hub.list_components("backbone")


def test_shadowing_a_builtin_component_skips_the_plugin_and_every_command_still_works(distributions, good_plugin):
    distributions.add("subspace-hub-shadow", "subspace_hub_shadow", good_plugin(backbone="reference"))
    with pytest.warns(PluginWarning, match=r"'reference' is registered twice: by plugin 'subspace_hub.builtin"):
        model = subspace_hub.load_backbone("reference")
    assert type(model).__name__ == "ReferenceBackbone"  # the builtin, not the shadow


def test_duplicate_plugin_names_skip_the_second_naming_both_distributions(distributions, good_plugin):
    distributions.add(
        "subspace-hub-one", "subspace_hub_one", good_plugin(backbone="one", metric="m-one"), entry_point="same"
    )
    distributions.add(
        "subspace-hub-two", "subspace_hub_two", good_plugin(backbone="two", metric="m-two"), entry_point="same"
    )
    with pytest.warns(PluginWarning, match=r"Two plugins are named 'same'.*subspace-hub-one.*subspace-hub-two"):
        infos = subspace_hub.list_plugins()
    assert [p.failed for p in infos if p.name == "same"] == [False, True]
    assert "one" in subspace_hub.list_components("backbone") and "two" not in subspace_hub.list_components("backbone")


def test_the_allowlist_resolves_a_conflict(distributions, good_plugin, monkeypatch):
    distributions.add("subspace-hub-alpha", "subspace_hub_alpha", good_plugin(metric="alpha-mae"))
    distributions.add("subspace-hub-beta", "subspace_hub_beta", good_plugin(metric="beta-mae"))
    monkeypatch.setenv(plugins.ENV_LOAD_PLUGINS, "subspace_hub_beta")
    assert "beta-mae" in subspace_hub.list_components("metric")
    assert "alpha-mae" not in subspace_hub.list_components("metric")


def test_disable_autoload_keeps_builtins_only(distributions, good_plugin, monkeypatch):
    distributions.add("subspace-hub-tiny", "subspace_hub_tiny", good_plugin())
    monkeypatch.setenv(plugins.ENV_DISABLE_AUTOLOAD, "1")
    assert (
        [p.source for p in subspace_hub.list_plugins()] == ["builtin"] * len(plugins.BUILTIN_PLUGINS) == ["builtin"] * 4
    )
    assert "tiny-third-party" not in subspace_hub.list_components("backbone")


def test_allowlist_overrides_disabled_autoload_by_distribution_name(distributions, good_plugin, monkeypatch):
    distributions.add("subspace-hub-tiny", "subspace_hub_tiny", good_plugin(), entry_point="tiny")
    distributions.add("subspace-hub-other", "subspace_hub_other", good_plugin(backbone="other", metric="other-m"))
    monkeypatch.setenv(plugins.ENV_DISABLE_AUTOLOAD, "1")
    monkeypatch.setenv(plugins.ENV_LOAD_PLUGINS, "Subspace_Hub.Tiny")  # normalised like pip does
    names = [p.name for p in subspace_hub.list_plugins()]
    assert "tiny" in names and "subspace_hub_other" not in names


def test_empty_allowlist_loads_no_entry_points(distributions, good_plugin, monkeypatch):
    distributions.add("subspace-hub-tiny", "subspace_hub_tiny", good_plugin())
    monkeypatch.setenv(plugins.ENV_LOAD_PLUGINS, "")
    assert all(p.builtin for p in subspace_hub.list_plugins())


def test_allowlist_naming_a_missing_plugin_is_reported(monkeypatch):
    monkeypatch.setenv(plugins.ENV_LOAD_PLUGINS, "not-installed")
    with pytest.warns(PluginWarning, match="not-installed"):
        info = {p.name: p for p in subspace_hub.list_plugins()}["not-installed"]
    assert "no installed distribution has a 'subspace_hub' entry point of that name" in info.error


def test_extra_plugin_modules_load_without_installation(tmp_path, monkeypatch, good_plugin):
    (tmp_path / "my_dev_plugin.py").write_text(__import__("textwrap").dedent(good_plugin(backbone="dev-backbone")))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(plugins.ENV_EXTRA_PLUGINS, "my_dev_plugin")
    try:
        info = {p.name: p for p in subspace_hub.list_plugins()}["my_dev_plugin"]
        assert (info.source, info.distribution) == (plugins.ENV_EXTRA_PLUGINS, None)
        assert subspace_hub.load_backbone("dev-backbone") is not None
    finally:
        sys.modules.pop("my_dev_plugin", None)


def test_unknown_names_suggest_and_list_known_names(distributions):
    distributions.add("subspace-hub-broken", "subspace_hub_broken", BROKEN_IMPORT)
    with pytest.warns(PluginWarning), pytest.raises(UnknownComponentError) as info:
        subspace_hub.load_backbone("refrence")
    message = str(info.value)
    assert "Did you mean 'reference'?" in message
    assert re.search(r"Known backbones: (.*, )?reference[,.]", message)
    assert "1 plugin(s) failed to load (subspace_hub_broken)" in message
    with pytest.raises(UnknownComponentError, match=r"No metrics are registered|Known metrics"):
        subspace_hub.get_metric("chamfer-typo")


def test_first_party_plugins_that_are_not_installed_get_an_install_hint(monkeypatch):
    monkeypatch.setattr(plugins, "FIRST_PARTY_DISTRIBUTIONS", {"backbone": {"lim": "subspace-hub-lim"}})
    with pytest.raises(
        UnknownComponentError, match="provided by the distribution subspace-hub-lim: pip install subspace-hub-lim"
    ):
        subspace_hub.load_backbone("lim")


def test_trace_switch_logs_plugin_loading(monkeypatch, capfd):
    monkeypatch.setenv(plugins.ENV_TRACE, "1")
    subspace_hub.list_plugins()
    err = capfd.readouterr().err
    assert "[subspace-hub plugins] loaded subspace_hub.builtin.backbones in" in err
    assert "register_backbones registered ['reference']" in err


def test_a_broken_builtin_always_raises():
    host = plugins.PluginHost(builtins=("subspace_hub.no_such_builtin",))
    with pytest.raises(PluginLoadError, match="no_such_builtin"):
        host.load()


def test_plugin_that_exits_at_import_does_not_kill_the_host(distributions):
    distributions.add("subspace-hub-exit", "subspace_hub_exit", "import sys\nsys.exit(3)\n")
    with pytest.warns(PluginWarning, match="SystemExit"):
        assert "reference" in subspace_hub.list_components("backbone")


def test_a_new_hook_argument_reaches_the_implementations_that_name_it(tmp_path, monkeypatch):
    """The hookspec promise: adding an argument to a hook breaks no plugin; a plugin that names it receives it."""
    specs = tmp_path / "evolved_hookspecs.py"
    specs.write_text(
        "from subspace_hub.hookspecs import hookspec, register_adapters, register_backbones, register_datasets\n"
        "@hookspec\n"
        "def register_metrics(register, settings):\n"
        '    """register_metrics with a new argument, as a later version of subspace-hub may add."""\n'
    )
    plugin = tmp_path / "settings_plugin.py"
    plugin.write_text(
        "from subspace_hub import MetricSpec, hookimpl\n"
        "@hookimpl\n"
        "def register_metrics(register, settings):\n"
        "    register(MetricSpec(settings['name'], lambda p, g: 0.0, higher_is_better=False))\n"
        "@hookimpl\n"
        "def register_backbones(register):\n"  # an implementation written before the argument existed
        "    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(plugins.ENV_EXTRA_PLUGINS, "settings_plugin")
    import evolved_hookspecs

    host = plugins.PluginHost(specs=evolved_hookspecs, hook_arguments={"settings": {"name": "from-settings"}})
    assert "from-settings" in host.components("metric")
    assert "abs_rel" in host.components("metric")  # the builtins, which name only `register`, still load
    assert {p.name: p for p in host.plugins()}["settings_plugin"].hooks == ("register_backbones", "register_metrics")
    sys.modules.pop("evolved_hookspecs", None)
    sys.modules.pop("settings_plugin", None)


def test_a_hook_argument_the_host_does_not_provide_is_named():
    """A host that does not provide an argument its specification declares says which one, at load."""
    evolved = types.ModuleType("evolved")

    @hookspecs.hookspec
    def register_metrics(register, settings):
        """register_metrics with an argument this host does not provide."""

    evolved.register_metrics = register_metrics
    for name in ("register_adapters", "register_backbones", "register_datasets"):
        setattr(evolved, name, getattr(hookspecs, name))
    with pytest.raises(PluginLoadError, match=r"register_metrics has argument\(s\) \['settings'\]"):
        plugins.PluginHost(specs=evolved).load()
