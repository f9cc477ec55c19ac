"""The command line's output files: written whole or not at all, never over a directory."""

from __future__ import annotations

import os
import stat

import pytest

from invoicing.cli.files import UsageError, write_output


def test_a_directory_as_output_is_a_usage_error_and_leaves_no_stray_file(tmp_path):
    target = tmp_path / "somedir"
    target.mkdir()
    with pytest.raises(UsageError, match="is a directory"):
        write_output(str(target), b"data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["somedir"]


def test_output_replaces_the_file_whole_with_the_usual_permissions(tmp_path):
    target = tmp_path / "out" / "invoices.xlsx"
    write_output(str(target), b"first")
    write_output(str(target), b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["invoices.xlsx"]
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask


def test_a_planted_symlink_at_the_old_temporary_name_is_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    (tmp_path / ".invoices.xlsx.part").symlink_to(victim)
    write_output(str(tmp_path / "invoices.xlsx"), b"data")
    assert victim.read_bytes() == b"keep"
