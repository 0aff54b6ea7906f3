"""Fleet, OrderBatch and SkillCatalog: defaults, read-only arrays, typed field-naming errors."""

from __future__ import annotations

import numpy as np
import pytest

from dispatch.errors import (
    DispatchError,
    DuplicateId,
    InvalidInput,
    ShapeMismatch,
    UnknownSkill,
    UnknownWorker,
)
from dispatch.model import NO_LIMIT_S, NONE_ID, Fleet, OrderBatch, SkillCatalog


def _fleet(**kw: object) -> Fleet:
    return Fleet.from_arrays([1, 2, 3], [31.2, 31.21, 31.22], [121.4, 121.41, 121.42], **kw)  # type: ignore[arg-type]


def test_fleet_defaults_are_permissive_and_read_only() -> None:
    fleet = _fleet()
    assert len(fleet) == 3
    assert fleet.available.all()
    assert (fleet.skills == 0).all()
    assert (fleet.shift_end_s == NO_LIMIT_S).all()
    assert (fleet.enterprise_id == NONE_ID).all()
    with pytest.raises(ValueError, match="read-only"):
        fleet.lat[0] = 0.0


def test_fleet_copies_caller_arrays() -> None:
    lat = np.array([31.2, 31.21, 31.22])
    fleet = Fleet.from_arrays([1, 2, 3], lat, [121.4, 121.41, 121.42])
    lat[0] = 0.0
    assert fleet.lat[0] == pytest.approx(31.2)


def test_nan_coordinate_names_field_and_index() -> None:
    with pytest.raises(InvalidInput, match=r"lat\[1\]"):
        Fleet.from_arrays([1, 2], [31.2, np.nan], [121.4, 121.4])
    with pytest.raises(InvalidInput, match=r"lng\[0\]"):
        OrderBatch.from_arrays([1], [31.2], [np.inf])


def test_duplicate_ids_name_both_indices() -> None:
    with pytest.raises(DuplicateId, match=r"ids\[2\] duplicates ids\[0\]"):
        Fleet.from_arrays([7, 8, 7], [31.2] * 3, [121.4] * 3)
    with pytest.raises(DuplicateId):
        OrderBatch.from_arrays([1, 1], [31.2] * 2, [121.4] * 2)


def test_errors_subclass_builtins() -> None:
    assert issubclass(InvalidInput, ValueError)
    assert issubclass(DuplicateId, InvalidInput)
    assert issubclass(UnknownSkill, InvalidInput)
    assert issubclass(UnknownSkill, DispatchError)


def test_length_mismatch_names_field() -> None:
    with pytest.raises(ShapeMismatch, match="rating"):
        _fleet(rating=[5.0, 4.0])
    with pytest.raises(ShapeMismatch, match="lng"):
        Fleet.from_arrays([1, 2], [31.2, 31.3], [121.4])


@pytest.mark.parametrize(
    ("field", "values", "pattern"),
    [
        ("rating", [5.0, 6.0, 4.0], r"rating\[1\]"),
        ("rating", [5.0, np.nan, 4.0], r"rating\[1\]"),
        ("reputation", [0.5, 0.5, -0.1], r"reputation\[2\]"),
        ("load_today", [0, -1, 0], r"load_today\[1\]"),
        ("mode", ["walk", "plane", "car"], r"mode\[1\]"),
        ("skills", [1.5, 0, 0], r"skills\[0\]"),
    ],
)
def test_out_of_range_fleet_fields(field: str, values: list[object], pattern: str) -> None:
    with pytest.raises(InvalidInput, match=pattern):
        _fleet(**{field: values})


def test_order_fields_validated() -> None:
    with pytest.raises(InvalidInput, match=r"service_s\[0\]"):
        OrderBatch.from_arrays([1], [31.2], [121.4], service_s=[0])
    with pytest.raises(InvalidInput, match=r"priority\[0\]"):
        OrderBatch.from_arrays([1], [31.2], [121.4], priority=[-1.0])


def test_exclusions_list_and_csr_forms_agree() -> None:
    listed = OrderBatch.from_arrays(
        [10, 11, 12], [31.2] * 3, [121.4] * 3, excluded_worker_ids=[[1, 2], [], [3]]
    )
    csr = OrderBatch.from_arrays(
        [10, 11, 12],
        [31.2] * 3,
        [121.4] * 3,
        excluded_worker_ids=[1, 2, 3],
        excluded_offsets=[0, 2, 2, 3],
    )
    np.testing.assert_array_equal(listed.excluded_offsets, csr.excluded_offsets)
    np.testing.assert_array_equal(listed.excluded_worker_ids, csr.excluded_worker_ids)
    assert csr.excluded_for(2).tolist() == [3]


def test_bad_exclusion_offsets() -> None:
    with pytest.raises(InvalidInput, match="excluded_offsets"):
        OrderBatch.from_arrays(
            [1, 2], [31.2] * 2, [121.4] * 2, excluded_worker_ids=[5], excluded_offsets=[0, 2, 1]
        )
    with pytest.raises(ShapeMismatch, match="excluded_worker_ids"):
        OrderBatch.from_arrays([1, 2], [31.2] * 2, [121.4] * 2, excluded_worker_ids=[[1]])


def test_skill_catalog_masks_and_unknown_skill() -> None:
    catalog = SkillCatalog(("cleaning", "cooking", "childcare"))
    assert catalog.mask(["cleaning", "childcare"]) == 0b101
    assert catalog.decode(0b110) == ("cooking", "childcare")
    np.testing.assert_array_equal(catalog.masks([["cooking"], []]), [2, 0])
    with pytest.raises(UnknownSkill, match="'gardening'"):
        catalog.mask(["gardening"])
    with pytest.raises(KeyError):
        catalog.bit("gardening")


def test_skill_catalog_validation() -> None:
    with pytest.raises(InvalidInput, match=r"names\[1\] duplicates names\[0\]"):
        SkillCatalog(("a", "a"))
    with pytest.raises(InvalidInput, match="at most 64"):
        SkillCatalog(tuple(f"s{i}" for i in range(65)))


def test_rows_of() -> None:
    fleet = _fleet()
    assert fleet.rows_of([3, 1]).tolist() == [2, 0]
    with pytest.raises(UnknownWorker, match="99"):
        fleet.rows_of([1, 99])


def test_mode_names_and_codes() -> None:
    fleet = _fleet(mode=["walk", "car", "ebike"])
    assert fleet.mode.tolist() == [0, 2, 1]
    assert _fleet(mode=[2, 2, 0]).mode.tolist() == [2, 2, 0]
