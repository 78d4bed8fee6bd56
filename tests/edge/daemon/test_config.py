import pytest

from cvae.edge.daemon.config import ConfigError, DaemonConfig


def _load(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return DaemonConfig.from_yaml(p)


def test_defaults_put_every_folder_under_base_dir(tmp_path):
    cfg = _load(tmp_path, f"base_dir: {tmp_path}\n")
    assert cfg.inbox == tmp_path / "inbox" and cfg.outbox == tmp_path / "outbox" and cfg.state == tmp_path / "state"
    assert cfg.level == 3 and cfg.backend == "auto" and cfg.after_success == "move"


@pytest.mark.parametrize("text,match", [
    ("tile_size: 500\n", "tile_size: 500 is not a positive multiple of 16"),
    ("level: null\n", "set exactly one"),
    ("tile_bytes: 100\n", "set exactly one"),
    ("after_success: shred\n", "after_success"),
    ("backend: cuda\n", "backend"),
    ("apid: 4000\n", "apid"),
    ("levle: 3\n", r"unknown key\(s\) \['levle'\]"),
    ("tile_size: '256'\n", "tile_size: '256' is not an integer"),
    ("threads: -2\n", "threads: -2 must be 0"),
    ("threads: 2.5\n", "threads: 2.5 is not an integer"),
    ("mode_search: fast\n", "mode_search: 'fast' must be 'auto', 'full', 'ladder' or 'residual'"),
    ("inbox: /x\noutbox: /x\n", "four different folders"),
    (": : :\n", "not valid YAML"),
])
def test_bad_config_names_the_key_and_the_fix(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        _load(tmp_path, text)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        DaemonConfig.from_yaml(tmp_path / "none.yaml")


@pytest.mark.parametrize("mode", ["auto", "full", "ladder", "residual"])
def test_every_mode_search_is_accepted(tmp_path, mode):
    assert _load(tmp_path, f"mode_search: {mode}\n").mode_search == mode
