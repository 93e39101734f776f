"""ModelSpec: built-in and user networks resolve; nothing else is ever called."""

from __future__ import annotations

import pytest
from torch import nn

from spark_dl.errors import UnsafeModelError
from spark_dl.model_spec import ModelSpec


def test_builtin_mlp_builds_with_injected_sizes():
    net = ModelSpec("mlp", {"hidden_layers": [5]}).build(in_features=3, out_features=2)
    assert [m.out_features for m in net.modules() if isinstance(m, nn.Linear)] == [5, 2]


def test_user_class_by_import_path():
    net = ModelSpec("netlib:TinyNet", {"width": 3}).build(in_features=2, out_features=1)
    assert net.body[0].out_features == 3


def test_torch_builtin_module_allowed_without_injection():
    net = ModelSpec("torch.nn:Linear", {"in_features": 2, "out_features": 2}).build(
        in_features=99, out_features=99
    )
    assert net.in_features == 2  # explicit kwargs win over injected ones


def test_os_system_is_refused_and_never_called(tmp_path):
    marker = tmp_path / "pwned"
    spec = ModelSpec("os:system", {"command": f"touch {marker}"})
    with pytest.raises(UnsafeModelError, match="standard-library"):
        spec.build()
    assert not marker.exists()


def test_non_module_object_is_refused():
    with pytest.raises(UnsafeModelError, match="not a torch.nn.Module subclass"):
        ModelSpec("netlib:NOT_A_MODULE").resolve()


def test_function_in_third_party_module_is_refused():
    with pytest.raises(UnsafeModelError, match="not a torch.nn.Module subclass"):
        ModelSpec("torch:load").resolve()


@pytest.mark.parametrize("name", ["resnet9000", "a b:c", "mod:", "../x:Y"])
def test_unknown_or_malformed_name(name):
    with pytest.raises(ValueError, match="built-in network name"):
        ModelSpec(name).resolve()


def test_missing_module_names_it():
    with pytest.raises(ValueError, match="no_such_pkg_xyz"):
        ModelSpec("no_such_pkg_xyz.mod:Net").resolve()


def test_unexpected_kwargs_list_what_is_accepted():
    with pytest.raises(ValueError, match=r"unexpected keyword argument 'depth'.*hidden_layers"):
        ModelSpec("mlp", {"depth": 3}).check_kwargs(in_features=2, out_features=2)


def test_json_round_trip():
    spec = ModelSpec("mlp", {"hidden_layers": [4, 2], "dropout": 0.1})
    assert ModelSpec.from_json(spec.to_json()) == spec
