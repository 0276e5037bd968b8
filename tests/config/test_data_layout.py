"""`check_data_layout`: the layout record written, kept, and a format 1 directory taken over as format 2.

Owns: the record's life across starts in-process (the refusals' one-line
errors through `starcite serve` are tests/test_cli.py). Must not: start a node.
"""

import json

import pytest

from starcite.config.data_layout import DATA_FORMAT, check_data_layout
from starcite.config.settings import ConfigError, load_config


def layout(tmp_path, record=None, groups=16):
    config = load_config(environ={"STARCITE_DATA_DIR": str(tmp_path), "STARCITE_NUM_GROUPS": str(groups)})
    path = tmp_path / "raft" / "layout.json"
    if record is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
    check_data_layout(config)
    return json.loads(path.read_text())


def test_a_new_directory_is_recorded_in_this_format(tmp_path):
    assert layout(tmp_path) == {"num_groups": 16, "data_format": DATA_FORMAT} and DATA_FORMAT == 2
    assert layout(tmp_path) == {"num_groups": 16, "data_format": 2}


@pytest.mark.parametrize("record", [{"num_groups": 16, "data_format": 1}, {"num_groups": 16}])
def test_a_format_1_directory_is_taken_over_as_format_2(tmp_path, record):
    assert layout(tmp_path, record) == {"num_groups": 16, "data_format": 2}


def test_a_format_1_directory_still_keeps_its_number_of_groups(tmp_path):
    with pytest.raises(ConfigError, match="NUM_GROUPS"):
        layout(tmp_path, {"num_groups": 8, "data_format": 1})
    assert json.loads((tmp_path / "raft" / "layout.json").read_text())["data_format"] == 1  # left as it was
