"""Tests for tunesmith.config: YAML loading, defaults, `a.b=c` overrides, and errors that name file:line and field."""

from __future__ import annotations

import textwrap

import pytest

from tunesmith.config import Config, build_config, dump_config, load_config, parse_overrides
from tunesmith.errors import ConfigError, TunesmithError

MINIMAL = """\
data:
  train: train.jsonl
"""


def write(tmp_path, text: str, name: str = "config.yaml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def config_error(source, overrides=None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(source, overrides)
    return info.value


# --- loading and defaults ---------------------------------------------------------------------------


def test_minimal_yaml_gets_documented_defaults(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.data.train == "train.jsonl"
    assert cfg.data.eval is None and cfg.data.eval_fraction is None and cfg.data.columns is None
    assert cfg.data.system_prompt is None and cfg.data.train_on_prompt is False
    assert cfg.model.name == "smollm2-135m" and cfg.model.dtype == "auto" and cfg.model.attention == "auto"
    assert cfg.model.trust_remote_code is False
    assert cfg.method == "lora"
    assert (cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout, cfg.lora.targets) == (16, 32.0, 0.05, "all-linear")
    t = cfg.train
    assert (t.epochs, t.max_steps, t.batch_size, t.grad_accum) == ("auto", None, 8, 1)
    assert t.lr == "auto" and t.budget is None and t.auto and t.max_length == 512 and t.seed == 0
    assert cfg.data.select is None and t.lr_candidates is None
    assert cfg.eval.enabled is True and cfg.eval.max_samples == 100 and cfg.eval.answer_regex is None
    assert cfg.output_dir == "runs/run"


def test_full_yaml_is_read_with_types(tmp_path):
    path = write(
        tmp_path,
        """\
        # a comment
        model:
          name: some/model
          dtype: bfloat16
          attention: eager
        data:
          train: data/train.jsonl
          eval: data/eval.jsonl
          columns: {prompt: question, completion: answer}
          system_prompt: >-
            You are terse. Answer with "category: <label>"
            and nothing else.
          train_on_prompt: true
        method: dora
        lora: {r: 8, alpha: 16, dropout: 0.0, targets: [q_proj, v_proj], rslora: true}
        train:
          epochs: 3
          max_steps: 40
          batch_size: 4
          lr: 1.0e-3
          warmup_ratio: 0.1
          max_grad_norm: null
          max_length: 256
        eval:
          enabled: false
          answer_regex: "category:\\\\s*(\\\\w+)"
        output_dir: runs/demo
        """,
    )
    cfg = load_config(path)
    assert cfg.model.name == "some/model" and cfg.model.dtype == "bfloat16" and cfg.model.attention == "eager"
    assert cfg.data.columns == {"prompt": "question", "completion": "answer"}
    assert cfg.data.system_prompt == 'You are terse. Answer with "category: <label>" and nothing else.'
    assert cfg.data.train_on_prompt is True
    assert cfg.method == "dora"
    assert cfg.lora.targets == ["q_proj", "v_proj"] and cfg.lora.rslora is True and cfg.lora.r == 8
    assert cfg.train.epochs == 3 and cfg.train.max_steps == 40 and cfg.train.batch_size == 4
    assert cfg.train.lr == pytest.approx(1e-3) and isinstance(cfg.train.lr, float)
    assert cfg.train.max_grad_norm is None
    assert cfg.eval.enabled is False and cfg.eval.answer_regex == r"category:\s*(\w+)"
    assert cfg.output_dir == "runs/demo"


def test_exponent_without_dot_is_still_a_float(tmp_path):
    # YAML 1.1 (PyYAML) reads `1e-3` as a string; the schema must still turn it into the number.
    cfg = load_config(write(tmp_path, MINIMAL + "train:\n  lr: 1e-3\n"))
    assert cfg.train.lr == pytest.approx(1e-3) and isinstance(cfg.train.lr, float)


def test_model_string_is_shorthand_for_name(tmp_path):
    cfg = load_config(write(tmp_path, "model: my/model\n" + MINIMAL))
    assert cfg.model.name == "my/model" and cfg.model.dtype == "auto"


def test_load_from_dict_and_config_passthrough():
    cfg = load_config({"data": {"train": "t.jsonl"}, "train": {"lr": 0.01}})
    assert cfg.train.lr == 0.01
    assert load_config(cfg) is cfg
    changed = load_config(cfg, ["train.batch_size=2"])
    assert changed.train.batch_size == 2 and changed.train.lr == 0.01
    assert cfg.train.batch_size == 8  # the original is not modified


def test_empty_file_reports_data_as_required(tmp_path):
    err = config_error(write(tmp_path, ""))
    assert err.field == "data" and "is required" in str(err)


def test_yaml_that_is_not_a_mapping(tmp_path):
    path = write(tmp_path, "- data\n- train\n")
    err = config_error(path)
    assert path in str(err) and "mapping" in str(err)


def test_missing_config_file(tmp_path):
    path = str(tmp_path / "nope.yaml")
    err = config_error(path)
    assert str(err) == f"{path}: no such config file"


def test_config_error_is_a_user_error_with_exit_code_2(tmp_path):
    err = config_error(str(tmp_path / "nope.yaml"))
    assert isinstance(err, TunesmithError) and err.exit_code == 2


# --- overrides --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "override, getter, expected",
    [
        ("train.max_steps=20", lambda c: c.train.max_steps, 20),
        ("train.lr=1e-3", lambda c: c.train.lr, 1e-3),
        ("train.lr=0.5", lambda c: c.train.lr, 0.5),
        ("train.lr=3", lambda c: c.train.lr, 3.0),
        ("train.packing=true", lambda c: c.train.packing, True),
        ("eval.enabled=false", lambda c: c.eval.enabled, False),
        ("train.max_grad_norm=null", lambda c: c.train.max_grad_norm, None),
        ("data.system_prompt=Be brief, please.", lambda c: c.data.system_prompt, "Be brief, please."),
        ("data.system_prompt=a=b", lambda c: c.data.system_prompt, "a=b"),
        ("data.system_prompt=", lambda c: c.data.system_prompt, ""),
        ("method=full", lambda c: c.method, "full"),
        ("output_dir=runs/other", lambda c: c.output_dir, "runs/other"),
        ("lora.targets=[q_proj, v_proj]", lambda c: c.lora.targets, ["q_proj", "v_proj"]),
        ("data.columns={prompt: question}", lambda c: c.data.columns, {"prompt": "question"}),
        ("model.dtype=bfloat16", lambda c: c.model.dtype, "bfloat16"),
    ],
)
def test_override_values_are_typed(tmp_path, override, getter, expected):
    cfg = load_config(write(tmp_path, MINIMAL + "train:\n  max_steps: 5\n  lr: 2.0e-4\n"), [override])
    value = getter(cfg)
    if isinstance(expected, float):
        assert value == pytest.approx(expected) and isinstance(value, float)
    else:
        assert value == expected and type(value) is type(expected)


def test_override_replaces_file_value_and_keeps_siblings(tmp_path):
    path = write(tmp_path, MINIMAL + "train:\n  lr: 1.0e-3\n  batch_size: 4\n")
    cfg = load_config(path, ["train.lr=5e-4", "data.eval=eval.jsonl"])
    assert cfg.train.lr == pytest.approx(5e-4) and cfg.train.batch_size == 4
    assert cfg.data.train == "train.jsonl" and cfg.data.eval == "eval.jsonl"


def test_later_override_wins(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL), ["train.seed=1", "train.seed=2"])
    assert cfg.train.seed == 2


def test_null_override_clears_a_file_value(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL + "train:\n  max_steps: 5\n"), ["train.max_steps=null"])
    assert cfg.train.max_steps is None


def test_parse_overrides_nests_keys():
    assert parse_overrides(["train.lr=1e-3", "train.batch_size=2", "method=full", "a.b.c=x"]) == {
        "train": {"lr": "1e-3", "batch_size": 2},
        "method": "full",
        "a": {"b": {"c": "x"}},
    }


@pytest.mark.parametrize("bad", ["train.lr", "=3", "train..lr=3", ".lr=3", "train.=3"])
def test_malformed_override(bad):
    with pytest.raises(ConfigError, match="not of the form key.sub=value") as info:
        parse_overrides([bad])
    assert bad in str(info.value)


def test_conflicting_overrides():
    with pytest.raises(ConfigError, match="conflicts"):
        parse_overrides(["train.lr=1", "train.lr.x=2"])


@pytest.mark.parametrize(
    "model_yaml",
    [
        "model: named-model\n",
        "model:\n  name: named-model\n  dtype: bfloat16\n",
    ],
)
def test_model_path_shorthand_override(tmp_path, model_yaml):
    folder = tmp_path / "my model"
    cfg = load_config(write(tmp_path, model_yaml + MINIMAL), [f"model={folder}"])
    assert cfg.model.name == str(folder)
    if "dtype" in model_yaml:
        assert cfg.model.dtype == "bfloat16"  # the rest of the model mapping is kept


def test_model_field_override_on_string_model(tmp_path):
    cfg = load_config(write(tmp_path, "model: named-model\n" + MINIMAL), ["model.dtype=float16"])
    assert cfg.model.name == "named-model" and cfg.model.dtype == "float16"


@pytest.mark.parametrize(
    "overrides",
    [
        ["model=/some/folder", "model.attention=eager"],
        ["model.attention=eager", "model=/some/folder"],  # the shorthand must not drop the earlier model.* value
    ],
)
def test_model_path_shorthand_combined_with_model_fields(tmp_path, overrides):
    cfg = load_config(write(tmp_path, "model:\n  name: x\n  dtype: float16\n" + MINIMAL), overrides)
    assert cfg.model.name == "/some/folder" and cfg.model.attention == "eager" and cfg.model.dtype == "float16"


# --- unknown keys -----------------------------------------------------------------------------------


def test_unknown_nested_key_in_file_has_did_you_mean_and_line(tmp_path):
    path = write(tmp_path, MINIMAL + "train:\n  batch_size: 2\n  lrr: 1e-3\n")
    err = config_error(path)
    assert err.field == "train.lrr"
    assert str(err) == f"{path}:5: field 'train.lrr': unknown key (did you mean 'lr'?)"


def test_unknown_top_level_key_in_file(tmp_path):
    path = write(tmp_path, MINIMAL + "trian:\n  lr: 1.0e-3\n")
    err = config_error(path)
    assert err.field == "trian" and err.origin == f"{path}:3"
    assert "did you mean 'train'?" in str(err)


def test_unknown_key_two_levels_down(tmp_path):
    path = write(tmp_path, "model:\n  name: x\n  dtpye: float32\n" + MINIMAL)
    err = config_error(path)
    assert err.field == "model.dtpye" and err.origin == f"{path}:3" and "did you mean 'dtype'?" in str(err)


def test_unknown_key_without_close_match_lists_known_keys(tmp_path):
    path = write(tmp_path, MINIMAL + "eval:\n  zzz: 1\n")
    err = config_error(path)
    assert err.field == "eval.zzz" and err.origin == f"{path}:4"
    assert "known keys:" in str(err) and "answer_regex" in str(err) and "max_samples" in str(err)


@pytest.mark.parametrize(
    "override, field, hint",
    [
        ("train.lrr=1e-3", "train.lrr", "did you mean 'lr'?"),
        ("trian.lr=1e-3", "trian", "did you mean 'train'?"),
        ("model.dtyp=float16", "model.dtyp", "did you mean 'dtype'?"),
        ("outputdir=x", "outputdir", "did you mean 'output_dir'?"),
    ],
)
def test_unknown_key_in_override(tmp_path, override, field, hint):
    err = config_error(write(tmp_path, MINIMAL), [override])
    assert err.field == field and err.origin == "override" and hint in str(err)


def test_unknown_key_in_dict_source():
    err = config_error({"data": {"train": "t", "evl": "e"}})
    assert err.field == "data.evl" and "did you mean 'eval'?" in str(err)


# --- invalid values ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "yaml_tail, field, line, words",
    [
        ("train:\n  lr: -1.0e-3\n", "train.lr", 4, "greater than 0"),
        ("train:\n  batch_size: 0\n", "train.batch_size", 4, "greater than or equal to 1"),
        ("train:\n  max_length: 4\n", "train.max_length", 4, "greater than or equal to 8"),
        ("train:\n  max_steps: lots\n", "train.max_steps", 4, "integer"),
        ("lora:\n  dropout: 1.0\n", "lora.dropout", 4, "less than 1"),
        ("lora:\n  targets: 3\n", "lora.targets", 4, "string"),
        ("eval:\n  answer_regex: '(unclosed'\n", "eval.answer_regex", 4, "not a valid regular expression"),
        ("method: qlora\n", "method", 3, "'lora', 'dora' or 'full'"),
        ("model:\n  dtype: int8\n", "model.dtype", 4, "'float32', 'bfloat16' or 'float16'"),
        ("train: 3\n", "train", 3, "dictionary"),
    ],
)
def test_invalid_value_in_file_names_field_and_line(tmp_path, yaml_tail, field, line, words):
    path = write(tmp_path, MINIMAL + yaml_tail)
    err = config_error(path)
    assert err.field == field
    assert err.origin == f"{path}:{line}"
    assert f"{path}:{line}: field '{field}':" in str(err) and words in str(err)


@pytest.mark.parametrize("value", ["1.5", "1", "0", "-0.2"])
def test_eval_fraction_out_of_range(tmp_path, value):
    path = write(tmp_path, f"data:\n  train: t.jsonl\n  eval_fraction: {value}\n")
    err = config_error(path)
    assert err.field == "data.eval_fraction" and err.origin == f"{path}:3"


def test_eval_and_eval_fraction_together(tmp_path):
    path = write(tmp_path, "data:\n  train: t.jsonl\n  eval: e.jsonl\n  eval_fraction: 0.1\n")
    err = config_error(path)
    assert err.field == "data" and err.origin == f"{path}:1"
    assert "either 'eval'" in str(err) and "not both" in str(err)
    assert "Value error" not in str(err)


@pytest.mark.parametrize(
    "override, field",
    [
        ("train.lr=-1", "train.lr"),
        ("train.batch_size=0", "train.batch_size"),
        ("data.eval_fraction=1.5", "data.eval_fraction"),
        ("eval.answer_regex=[a-", "eval.answer_regex"),
        ("method=sft", "method"),
        ("lora.targets=[1, 2]", "lora.targets"),
    ],
)
def test_invalid_value_in_override_is_attributed_to_the_override(tmp_path, override, field):
    # the file holds a valid value for some of these fields: the error must not point at that line
    path = write(tmp_path, MINIMAL + "train:\n  lr: 1.0e-3\n")
    err = config_error(path, [override])
    assert err.field == field and err.origin == "override"


def test_missing_train_file_setting_is_required(tmp_path):
    path = write(tmp_path, "data:\n  eval: e.jsonl\n")
    err = config_error(path)
    assert err.field == "data.train" and "is required" in str(err) and path in str(err)


def test_build_config_without_file_uses_source_name():
    with pytest.raises(ConfigError) as info:
        build_config({"data": {"train": "t"}, "train": {"lr": 0}}, source="inline")
    assert str(info.value).startswith("inline: field 'train.lr':")


# --- malformed YAML ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, line",
    [
        ("data:\n  train: t.jsonl\n  bad: value: x\ntrain:\n  lr: 1\n", 3),
        ("data:\n  train: t.jsonl\ntrain:\n  lr: 1\n   batch_size: 2\n", 5),
        ("data:\n\ttrain: t.jsonl\n", 2),
    ],
)
def test_malformed_yaml_names_the_line(tmp_path, text, line):
    path = write(tmp_path, text)
    err = config_error(path)
    assert err.origin == f"{path}:{line}"
    assert str(err).startswith(f"{path}:{line}: invalid YAML:")


# --- dump / load round trip -------------------------------------------------------------------------


def test_dump_then_load_round_trips(tmp_path):
    cfg = load_config(
        {
            "model": {"name": str(tmp_path / "model dir"), "dtype": "bfloat16"},
            "data": {
                "train": "a.jsonl",
                "eval_fraction": 0.2,
                "columns": {"prompt": "q", "completion": "a"},
                "system_prompt": "Line one: with a colon.\nLine two, 'quoted' and \"double\".",
            },
            "method": "dora",
            "lora": {"targets": ["q_proj", "v_proj"], "r": 4, "alpha": 8},
            "train": {"lr": 1e-3, "max_steps": 7, "max_grad_norm": None, "threads": 2},
            "eval": {"answer_regex": r"category:\s*(\w+)", "enabled": False},
            "output_dir": "runs/x",
        }
    )
    text = dump_config(cfg)
    path = tmp_path / "saved.yaml"
    path.write_text(text, encoding="utf-8")
    again = load_config(path)
    assert again == cfg
    assert dump_config(again) == text


def test_dump_of_defaults_round_trips(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL))
    path = tmp_path / "saved.yaml"
    path.write_text(dump_config(cfg), encoding="utf-8")
    assert load_config(path) == cfg
    assert isinstance(load_config(path), Config)


@pytest.mark.parametrize("value,expected", [("true", True), ("false", False), ("auto", "auto")])
def test_packing_takes_true_false_or_auto(value, expected):
    cfg = load_config({"data": {"train": "t.jsonl"}}, [f"train.packing={value}"])
    assert cfg.train.packing == expected
    assert load_config({"data": {"train": "t.jsonl"}}).train.packing == "auto"


def test_packing_error_names_the_choices():
    err = config_error({"data": {"train": "t.jsonl"}}, ["train.packing=maybe"])
    assert "train.packing" in str(err) and "true, false or 'auto'" in str(err)


@pytest.mark.parametrize(
    ("given", "seconds"), [("90s", 90.0), ("10m", 600.0), ("1.5h", 5400.0), (45, 45.0), ("2 min", 120.0)]
)
def test_budget_durations(given, seconds):
    assert load_config({"data": {"train": "t"}, "train": {"budget": given}}).train.budget == seconds


@pytest.mark.parametrize("given", ["soon", "10 parsecs", "-5m", 0, True, "m"])
def test_bad_budget_names_the_field(given):
    with pytest.raises(ConfigError, match=r"train\.budget"):
        load_config({"data": {"train": "t"}, "train": {"budget": given}})


def test_explicit_rate_and_steps_are_not_auto():
    t = load_config({"data": {"train": "t"}, "train": {"lr": 1e-3, "max_steps": 5}}).train
    assert not t.auto and t.lr == 1e-3
    assert load_config({"data": {"train": "t"}, "train": {"lr": 1e-3}}).train.auto  # the length is still chosen
    with pytest.raises(ConfigError, match=r"train\.lr.*'auto'"):
        load_config({"data": {"train": "t"}, "train": {"lr": "fast"}})
