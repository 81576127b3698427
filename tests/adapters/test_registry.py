"""The registry: built-ins by name, entry points, generic callables, and its errors."""

from __future__ import annotations

import itertools
import json
import sys
import textwrap

import pytest

from xentconf.adapters.callable import CallableTarget
from xentconf.adapters.reference import ReferenceTarget
from xentconf.adapters.registry import (
    BUILTINS,
    ENTRY_POINT_GROUP,
    available_targets,
    get_target,
    info_to_dict,
    target_names,
)
from xentconf.protocol import API_IDS, Target, TargetError

NN_SPARSE = API_IDS[2]
_counter = itertools.count()

PLUGIN = '''
from xentconf.protocol import Mode, Target, TargetInfo

class DemoTarget(Target):
    name = "demo"

    def __init__(self, flavour="plain"):
        self.flavour = flavour

    def info(self):
        return TargetInfo(name="demo", available=True, version="0.1",
                          modes=(Mode("cpu", "cpu"),), description=self.flavour)

    def prepare(self, setup):
        raise NotImplementedError

def make(**options):
    return DemoTarget(**options)

def not_a_target():
    return object()

class Grumpy(DemoTarget):
    def info(self):
        raise RuntimeError("no info today")
'''


@pytest.fixture
def module(tmp_path, monkeypatch):
    """Write ``source`` as a fresh module on sys.path and return its name."""

    def make(source: str) -> str:
        name = f"xentconf_test_mod_{next(_counter)}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.setitem(sys.modules, name, None)
        del sys.modules[name]  # removed again after the test if it was imported
        return name

    return make


@pytest.fixture
def plugin(tmp_path, module, monkeypatch):
    """A real (tiny) installed distribution registering adapters in the entry-point group."""
    mod = module(PLUGIN)
    site = tmp_path / "site"
    dist = site / "xentconf_demo_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: xentconf-demo-plugin\n"
                                   "Version: 0.1\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent(f"""\
        [{ENTRY_POINT_GROUP}]
        demo = {mod}:DemoTarget
        factory = {mod}:make
        broken = xentconf_test_not_installed:DemoTarget
        badattr = {mod}:Nope
        notatarget = {mod}:not_a_target
        grumpy = {mod}:Grumpy
        reference = {mod}:DemoTarget

        [some.other.group]
        elsewhere = {mod}:DemoTarget
        """))
    monkeypatch.syspath_prepend(str(site))
    return mod


def test_builtins_are_exactly_these():
    assert BUILTINS == {
        "tensorflow": "xentconf.adapters.tensorflow:TensorFlowTarget",
        "keras": "xentconf.adapters.keras:KerasTarget",
        "torch": "xentconf.adapters.torch:TorchTarget",
        "jax": "xentconf.adapters.jax:JaxTarget",
        "onnxruntime": "xentconf.adapters.onnxruntime:OnnxRuntimeTarget",
        "reference": "xentconf.adapters.reference:ReferenceTarget",
    }
    assert target_names()[:6] == list(BUILTINS)


def test_get_builtin():
    target = get_target("reference")
    assert isinstance(target, ReferenceTarget) and target.keras == "keras2"
    assert get_target("reference", keras="keras3").keras == "keras3"
    with pytest.raises(TargetError, match="does not take these options.*colour"):
        get_target("reference", colour="blue")


def test_every_builtin_is_listed_without_crashing():
    infos = available_targets()
    assert [i.name for i in infos][:6] == list(BUILTINS)
    for info in infos:
        assert info.available or info.reason, info.name
        json.dumps(info_to_dict(info))  # JSON-ready


def test_missing_builtin_module_is_unavailable(monkeypatch):
    monkeypatch.setitem(BUILTINS, "ghost", "xentconf.adapters.ghost:GhostTarget")
    info = {i.name: i for i in available_targets()}["ghost"]
    assert not info.available
    assert info.reason == ("built-in target 'ghost' is not part of this xentconf (module "
                           "xentconf.adapters.ghost does not exist); choose another target")
    with pytest.raises(TargetError, match="not part of this xentconf"):
        get_target("ghost")


def test_builtin_whose_dependency_is_missing(module, monkeypatch):
    mod = module("import xentconf_test_absent_framework\nclass T: pass\n")
    monkeypatch.setitem(BUILTINS, "fragile", f"{mod}:T")
    with pytest.raises(TargetError, match=f"built-in target 'fragile': module '{mod}' does not "
                       r"import \(ModuleNotFoundError: No module named "
                       "'xentconf_test_absent_framework'"):
        get_target("fragile")


def test_unknown_target_lists_the_known_names():
    with pytest.raises(TargetError) as info:
        get_target("caffe")
    msg = str(info.value)
    assert msg.startswith("unknown target 'caffe'; known targets: tensorflow, keras, torch, "
                          "jax, onnxruntime, reference")
    assert "package.module:attr" in msg


# --------------------------------------------------------------------------- callables


def test_generic_callable(module):
    mod = module("def f(labels, logits):\n    return logits\n")
    target = get_target(f"{mod}:f", api=NN_SPARSE, profile="xla")
    assert isinstance(target, CallableTarget)
    assert target.info().modes[0].profile == "xla"


@pytest.mark.parametrize("source,attr,options,message", [
    (None, "f", {}, r"give the id of the API .*\(api=\.\.\.\)"),
    (None, "f", {"api": "tf.nn.softmax"}, r"unknown API id 'tf.nn.softmax'; use one of: "
                                          r"tf\.raw_ops\.SparseSoftmax"),
    ("import xentconf_test_absent\n", "f", {"api": NN_SPARSE},
     r"does not import \(ModuleNotFoundError: No module named 'xentconf_test_absent'\)"),
    ("raise RuntimeError('boom\\nsecond line')\n", "f", {"api": NN_SPARSE},
     r"does not import \(RuntimeError: boom second line\)"),
    ("g = 1\n", "f", {"api": NN_SPARSE}, "has no attribute 'f'"),
    ("f = 1\n", "f", {"api": NN_SPARSE}, "is not callable"),
    ("def f(x, y):\n    pass\n", "f", {"api": NN_SPARSE},
     r"does not fit tf\.nn\.sparse_softmax_cross_entropy_with_logits: it must accept the "
     r"keyword arguments labels, logits"),
    ("def f(labels, logits):\n    pass\n", "f", {"api": NN_SPARSE, "colour": 1},
     "unexpected keyword argument 'colour'"),
])
def test_generic_callable_errors(module, source, attr, options, message):
    mod = module(source or "def f(labels, logits):\n    pass\n")
    with pytest.raises(TargetError, match=message) as info:
        get_target(f"{mod}:{attr}", **options)
    assert "\n" not in str(info.value)


def test_spec_without_a_module():
    with pytest.raises(TargetError, match="is not of the form package.module:attr"):
        get_target(":f", api=NN_SPARSE)


def test_keras_class_signature(module):
    mod = module('''
        class Loss:
            def __init__(self, from_logits=False, ignore_class=None, reduction="auto"):
                pass
            def __call__(self, y_true, y_pred, sample_weight=None):
                return 0.0
        class Wrong:
            def __init__(self, from_logits=False):
                pass
        ''')
    api = "tf.keras.losses.SparseCategoricalCrossentropy"
    assert get_target(f"{mod}:Loss", api=api).info().available
    with pytest.raises(TargetError, match="constructor must accept.*ignore_class"):
        get_target(f"{mod}:Wrong", api=api)


# --------------------------------------------------------------------------- entry points


def test_entry_points_are_found(plugin):
    names = target_names()
    assert names[:6] == list(BUILTINS)
    assert names[6:] == ["badattr", "broken", "demo", "factory", "grumpy", "notatarget"]
    assert "elsewhere" not in names  # another group


def test_entry_point_target_and_factory(plugin):
    demo = get_target("demo")
    assert isinstance(demo, Target) and type(demo).__module__ == plugin
    assert get_target("factory", flavour="spicy").flavour == "spicy"
    assert get_target("demo", flavour="mild").info().description == "mild"


@pytest.mark.parametrize("name,message", [
    ("broken", r"entry point 'broken' \(xentconf_test_not_installed:DemoTarget, group "
               r"xentconf\.adapters\) does not import \(ModuleNotFoundError"),
    ("badattr", r"entry point 'badattr' .*: attribute does not exist"),
    ("notatarget", r"entry point 'notatarget' returned a object, not a xentconf\.protocol"
                   r"\.Target"),
])
def test_entry_point_errors(plugin, name, message):
    with pytest.raises(TargetError, match=message):
        get_target(name)


def test_entry_points_in_the_listing(plugin):
    infos = {i.name: i for i in available_targets()}
    assert infos["demo"].available and infos["demo"].version == "0.1"
    assert not infos["broken"].available and "does not import" in infos["broken"].reason
    assert not infos["grumpy"].available
    assert infos["grumpy"].reason == "info() raised RuntimeError: no info today"
    clash = infos[f"reference ({plugin}:DemoTarget)"]
    assert not clash.available and "clashes with the built-in" in clash.reason
    assert infos["reference"].available  # the built-in keeps its name
    assert isinstance(get_target("reference"), ReferenceTarget)

