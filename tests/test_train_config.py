"""Configuration: TOML files and overrides; a bad value is an error naming the field and what is allowed."""

import pytest

from rnnlab.training import config as cfg
from rnnlab.training.config import ConfigError, TrainConfig


def test_defaults_round_trip_through_toml(tmp_path):
    config = cfg.override(TrainConfig(), {"optim.betas": [0.8, 0.9], "model.forget_bias": 1.0, "steps": 7})
    path = tmp_path / "c.toml"
    path.write_text(cfg.dumps(config))
    assert cfg.load(path) == config
    assert "forget_bias = 1.0" in path.read_text() and "chrono" not in path.read_text()  # None is left out


def test_a_toml_file_sets_fields_and_keeps_the_other_defaults(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('steps = 50\n[optim]\nname = "sgd"\nlr = 0.1\nmomentum = 0.9\nnesterov = true\n')
    config = cfg.load(path)
    assert config.steps == 50 and config.optim.name == "sgd" and config.optim.nesterov
    assert config.optim.lr == 0.1 and config.clip == cfg.ClipConfig()


def test_overrides_parse_command_line_text():
    config = cfg.override(
        TrainConfig(),
        {
            "steps": "20",
            "optim.lr": "3e-4",
            "bptt.stateful": "true",
            "optim.betas": "[0.9, 0.95]",
            "out": "12",
        },
    )
    assert config.steps == 20 and config.optim.lr == 3e-4 and config.bptt.stateful
    assert config.optim.betas == (0.9, 0.95) and config.out == "12"  # a str field keeps the text as it is
    assert cfg.override(config, {"model.forget_bias": "none"}).model.forget_bias is None
    text = cfg.override(config, {"model.nonlinearity": "relu", "model.recurrent_init": "orthogonal"}).model
    assert text.nonlinearity == "relu" and text.recurrent_init == "orthogonal"  # text fields take text
    assert cfg.override(config, {"model.nonlinearity": "none"}).model.nonlinearity is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"optim.lrr": 1}, r"unknown setting 'optim.lrr'; did you mean 'optim.lr'\?"),
        ({"optim.zzz": 1}, r"unknown setting 'optim.zzz'; \[optim\] has: name, lr, weight_decay"),
        ({"nonsense": 1}, r"unknown setting 'nonsense'; the settings are steps, seed"),
        ({"optim.lr": -1}, r"optim.lr: expected a number > 0.0 and <= 1e6, got -1"),
        ({"optim.lr": "fast"}, r"optim.lr: expected a number > 0.0 and <= 1e6, got 'fast'"),
        ({"optim.name": "adamm"}, r"optim.name: expected one of: sgd, adam, adamw, rmsprop, got 'adamm'"),
        ({"steps": 0}, r"steps: expected an integer >= 1, got 0"),
        ({"steps": 2.5}, r"steps: expected an integer >= 1, got 2.5"),
        ({"steps": True}, r"steps: expected an integer >= 1, got True"),
        ({"deterministic": "yes"}, r"deterministic: expected true or false, got 'yes'"),
        ({"optim.betas": [0.9]}, r"optim.betas: expected a list of 2 numbers >= 0.0 and < 1.0, got \[0.9\]"),
        ({"clip.beta": 1.5}, r"clip.beta: expected a number >= 0.0 and <= 0.9999, got 1.5"),
        ({"bptt.mode": "truncated", "bptt.k1": 8, "bptt.k2": 4}, r"bptt.k2: must be >= bptt.k1 = 8"),
        ({"bptt.k1": 8}, r"bptt.k1, bptt.k2: only used with bptt.mode = 'truncated'"),
        ({"optim.nesterov": True}, r"optim.nesterov: needs optim.name = 'sgd' and optim.momentum > 0"),
        (
            {"model.nonlinearity": "sigmoid"},
            r"model.nonlinearity: expected one of: tanh, relu, got 'sigmoid'",
        ),
        ({"model.execution": "fast"}, r"model.execution: expected one of: auto, fused, unrolled"),
        ({"model.recurrent_max": 0}, r"model.recurrent_max: expected a number > 0.0 and <= 1e6, got 0"),
        # non-finite or overflowing: refused here, not a traceback from inside torch's optimisers
        (
            {"optim.lr": "inf"},
            r"optim.lr: expected a number > 0.0 and <= 1e6, got inf \(a number must be finite",
        ),
        ({"optim.lr": "1e38"}, r"optim.lr: expected a number > 0.0 and <= 1e6, got 1e\+38"),
        ({"optim.weight_decay": "nan"}, r"optim.weight_decay: .* got nan \(a number must be finite\)"),
        ({"optim.weight_decay": "1e39"}, r"optim.weight_decay: expected a number >= 0.0 and <= 1e6"),
        ({"optim.betas": "[1.0, 0.999]"}, r"optim.betas: expected a number >= 0.0 and < 1.0, got 1.0"),
        ({"model.forget_bias": "nan"}, r"model.forget_bias: .* got nan \(a number must be finite\)"),
        ({"model.forget_bias": "-inf"}, r"model.forget_bias: .* got -inf"),
        (
            {"model.forget_bias": 1000},
            r"model.forget_bias: expected a number >= -100.0 and <= 100.0, got 1000",
        ),
        ({"model.chrono": 2}, r"model.chrono: expected a number > 2.0 and <= 1e9, got 2"),
        ({"model.spectral_radius": "inf"}, r"model.spectral_radius: .* got inf"),
        ({"clip.max_norm": "inf"}, r"clip.max_norm: expected a number > 0.0, got inf \(a number must be fin"),
        ({"eval.min_delta": "inf"}, r"eval.min_delta: .* got inf"),
    ],
)
def test_bad_values_name_the_field_and_what_is_allowed(overrides, message):
    with pytest.raises(ConfigError, match=message):
        cfg.override(TrainConfig(), overrides)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[optim]\nlr = -0.5\n", r"optim.lr: expected a number > 0.0"),
        ("[optimiser]\nlr = 0.5\n", r"bad.toml: unknown setting 'optimiser.lr'"),
        ("optim = 3\n", r"bad.toml: \[optim\] must be a table"),
        ("steps = = 3\n", r"bad.toml: not valid TOML"),
    ],
)
def test_a_bad_toml_file_names_the_file_and_the_field(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        cfg.load(path)


def test_a_toml_file_gives_each_value_its_type(tmp_path):
    # the command line's text is read as TOML literals; a TOML file's string is a string
    assert cfg.override(TrainConfig(), {"steps": "5"}).steps == 5
    path = tmp_path / "c.toml"
    path.write_text('steps = "5"\n')
    with pytest.raises(
        ConfigError, match=r"steps: expected an integer >= 1, got '5' \(text: write the value"
    ):
        cfg.load(path)
    path.write_text('[optim]\nlr = "1e-3"\n')
    with pytest.raises(ConfigError, match=r"optim.lr: expected a number > 0.0 and <= 1e6, got '1e-3'"):
        cfg.load(path)
    path.write_text('[model]\nforget_bias = "none"\ncell = "gru"\n')  # unsetting stays possible
    assert cfg.load(path).model.forget_bias is None


def test_every_number_field_refuses_nan_and_inf():
    for name, _, tp in cfg.fields():
        if "float" in str(tp):
            for bad in ("nan", "inf", "-inf"):
                with pytest.raises(ConfigError, match=rf"^{name}: expected"):
                    cfg.override(TrainConfig(), {name: bad})


def test_a_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"config file not found: .*missing.toml"):
        cfg.load(tmp_path / "missing.toml")


def test_validate_catches_bad_values_set_in_python():
    config = TrainConfig()
    config.clip.max_norm = 0.0
    with pytest.raises(ConfigError, match=r"clip.max_norm: expected a number > 0.0, got 0.0"):
        cfg.validate(config)
    config = TrainConfig()
    config.optim.lr = "0.1"  # type: ignore[assignment]
    with pytest.raises(ConfigError, match=r"optim.lr: expected a number > 0.0 and <= 1e6, got '0.1'"):
        cfg.validate(config)


def test_every_field_has_help_text():
    for name, f, _ in cfg.fields():
        assert f.metadata.get("help"), name
