"""A CheXchoNet-layout folder seeded with realistic faults (issue 15, sections 1 and 2): bad metadata rows are
rejected and listed with their reasons, bad files are skipped with a message that says what is wrong, and the
scaler, the prevalence table and the cache agree. Most checks call 02's exported functions directly (seconds);
one test runs 01 + 02 through `cxr-pipeline` on the folder, as a user would."""
import json, subprocess, warnings
import numpy as np, pandas as pd
import pydicom, pytest
from conftest import ROOT, BIN, raw_ids_found
from cxr_nbdev.phantom import make_cohort, write_dicom, check_cohort_folder, table_one
from cxr_nbdev.preprocessing import (PLAUSIBLE_RANGES, FeatureScaler, ImageReadNote, build_cache, check_rows,
                                     derive_labels, read_metadata, split_by_patient)

N = 40  # phantom patients, one radiograph each; rows 0-17 get the faults below


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    "A CheXchoNet-layout folder (metadata.csv + images/) with one fault per row in rows 0-17."
    d = tmp_path_factory.mktemp("chexchonet")
    meta = make_cohort(d, N, images_per_patient=1.0, size=32, seed=5, n_workers=1).drop(columns=["source", "cxr_path"])
    for f in ["factors.csv", "phantom.json"]: (d / f).unlink()
    m = meta.astype({"age": object, "sex": object})
    m.loc[0, "lvidd"] = 50.0                                    # mm typed into a cm column
    m.loc[1, "age"], m.loc[2, "age"] = 200, -5
    m.loc[3, "age"] = np.nan
    m.loc[4, "sex"], m.loc[5, "sex"] = "Male" if m.sex[4] == "M" else "Female", m.sex[5].lower()  # spellings: kept
    m.loc[6, "sex"] = "X"
    m.loc[7, "patient_id"] = m.patient_id[8]                    # one patient, both sexes
    m.loc[7, "sex"] = "F" if m.sex[8] == "M" else "M"
    m.loc[9, "slvh"] = 1 - m.slvh[9]                            # shipped label disagrees with the echo values
    m.loc[10, ["slvh", "dlv", "composite_slvh_dlv"]] = np.nan   # no shipped labels: derived
    (d / "images" / m.cxr_filename[11]).unlink()                # missing file
    (d / "images" / m.cxr_filename[12]).write_bytes(b"")        # zero-byte file
    (d / "images" / m.cxr_filename[13]).write_text("this is not a radiograph\n" * 20)
    f14 = d / "images" / m.cxr_filename[14]                     # multi-frame DICOM
    ds = pydicom.dcmread(f14)
    a = ds.pixel_array
    ds.NumberOfFrames = 2
    ds.PixelData = np.stack([a, a[::-1]]).tobytes()
    ds.save_as(f14)
    dup_conflict = m.loc[[15]].assign(cxr_pixel_spacing_x=0.1)  # the same file twice, with other values
    dup_exact = m.loc[[16]]                                     # the same row twice: kept once
    m = pd.concat([m, dup_conflict, dup_exact], ignore_index=True)
    m.to_csv(d / "metadata.csv", index=False)
    return d


def test_rows_rejected_with_reasons(faulty):
    raw = read_metadata(faulty)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        ok, rej = check_rows(raw)
    why = rej.set_index("row").reason
    assert why[0] == "lvidd = 50 outside [2, 9]"
    assert why[1] == "age = 200 outside [18, 100]" and why[2] == "age = -5 outside [18, 100]"
    assert why[3] == "age missing"
    assert why[6] == "sex 'X' is not M/F"
    assert "recorded as both sexes" in why[7] and "recorded as both sexes" in why[8]
    assert why[9].startswith(f"slvh = {raw.slvh[9]:g} in the metadata but {1 - int(raw.slvh[9])} from the echo values (sex ")
    assert why[15] == why[N] == f"cxr_filename also in rows 15, {N} with other values"
    assert why[N + 1] == "repeats row 16" and 16 not in why
    assert set(why.index) == {0, 1, 2, 3, 6, 7, 8, 9, 15, N, N + 1}
    assert rej.columns.tolist() == ["row", "patient_id", "cxr_filename", "check", "reason"]
    assert rej.set_index("row").patient_id[0] == raw.patient_id[0]
    assert ok.loc[[4, 5], "sex"].tolist() == [raw.sex[4][0].upper(), raw.sex[5].upper()]   # spellings normalised
    assert 10 in ok.index                                        # missing labels are derived, not rejected
    assert "11 of 42 rows rejected: row 0" in str(w[0].message)
    assert all(ok[c].between(*PLAUSIBLE_RANGES[c]).all() for c in PLAUSIBLE_RANGES)


def test_bad_files_named_and_cache_agrees(faulty, tmp_path):
    ok, rej = check_rows(read_metadata(faulty))
    meta = split_by_patient(derive_labels(ok), (0.8, 0.1, 0.1), seed=0).assign(source="real")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        images, cache = build_cache(meta, faulty, tmp_path / "cache", 16, n_workers=1)
    skipped = pd.read_csv(tmp_path / "cache" / "skipped.csv").set_index("cxr_path").reason
    names = read_metadata(faulty).cxr_path
    assert skipped[names[11]].endswith("file not found")
    assert "empty file (0 bytes)" in skipped[names[12]]
    assert "not a DICOM file (no DICM marker" in skipped[names[13]]
    notes = pd.read_csv(tmp_path / "cache" / "read_notes.csv")
    assert notes.cxr_path.tolist() == [names[14]] and notes.note[0].endswith("2 frames, frame 0 used")
    assert any(x.category is ImageReadNote for x in w)
    assert len(images) == len(meta) - 3 == N + 2 - 11 - 3
    # the scaler is fitted on what was cached: the lvidd = 50 row is gone, so its sd is not inflated
    sc = FeatureScaler().fit(cache[cache.split == "train"])
    clean_sd = cache.lvidd.std()
    assert sc.std["lvidd"] < 1.0 and abs(sc.std["lvidd"] - clean_sd) < 0.25


def test_external_cohort_and_test_patients_keep_main_cohort(tmp_path):
    "Test-only patients and the external cohort draw from their own streams: the main cohort is unchanged."
    from cxr_nbdev.phantom import make_external_cohort
    a = make_cohort(tmp_path / "a", 8, 1.0, size=32, seed=3, n_workers=1)
    b = make_cohort(tmp_path / "b", 8, 1.0, size=32, seed=3, n_workers=1, test_patients=3)
    assert b[b.assigned_split == ""].drop(columns="assigned_split").to_dict("list") == a.to_dict("list")
    for f in a.cxr_path:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    sp = split_by_patient(b, (0.5, 0.25, 0.25), seed=0)
    assert set(sp.split[b.assigned_split == "test"]) == {"test"}
    ext = make_external_cohort(tmp_path / "ext", 6, 8, 0.5, size=32, seed=3, n_workers=1)
    assert len(ext) == 8 and not set(ext.patient_id) & set(a.patient_id)
    fac = pd.read_csv(tmp_path / "ext" / "factors.csv")
    assert fac.cxr_filename.tolist() == ext.cxr_filename.tolist()


def test_table_one_and_folder_check_tolerate_faults(faulty):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        meta, gone = check_cohort_folder(faulty)
    assert gone.reason.tolist() == ["missing", "empty (0 bytes)"]
    assert "2 of 42 image files missing or empty" in str(w[0].message)
    t1 = table_one(meta)
    assert t1.loc["rows with missing or implausible values", "this cohort"] == "5"


def test_pipeline_01_02_on_faulty_folder(faulty, outputs_dir):
    "01 + 02 run through on the faulty folder; every count in done.json, the CSVs and the cache agree."
    r = subprocess.run([str(BIN / "cxr-pipeline"), "--config", "configs/smoke.yaml", "--only", "01_phantom", "02_preprocessing",
                        "--run-name", "faults", "-p", "dataset", "chexchonet", "-p", "data_dir", str(faulty),
                        "--no-lessons"],
                       cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = outputs_dir / "faults"
    s1 = json.loads((run / "01_phantom" / "done.json").read_text())["summary"]
    assert s1["n_missing_files"] == 2 and s1["external_dir"] == "" and s1["factors"] == ""
    s2 = json.loads((run / "02_preprocessing" / "done.json").read_text())["summary"]
    assert (s2["n_rejected"], s2["n_skipped"], s2["n_read_notes"], s2["external_cache"]) == (11, 3, 1, "")
    assert s2["rejected_by_check"] == {"range": 3, "missing": 1, "sex": 1, "sex_conflict": 2, "label": 1, "duplicate": 3}
    rej = pd.read_csv(s2["rejected_rows"])
    assert sorted(rej.row) == [0, 1, 2, 3, 6, 7, 8, 9, 15, N, N + 1]
    cache = pd.read_csv(run / "02_preprocessing" / "cache" / "metadata.csv")
    assert s2["n_images"] == len(cache) == N + 2 - 11 - 3
    prev = pd.read_csv(run / "02_preprocessing" / "prevalence_by_split.csv").set_index("split")
    assert prev.images.to_dict() == cache.split.value_counts().to_dict() == s2["n_by_split"]
    sc = FeatureScaler.load(run / "02_preprocessing" / "scaler.json")
    assert abs(sc.mean["lvidd"] - cache.lvidd[cache.split == "train"].mean()) < 1e-9 and sc.std["lvidd"] < 1.0
    assert not (run / "02_preprocessing" / "external_cache").exists()
    # pseudonyms only, and the way back: metadata_row and the key beside the data
    assert raw_ids_found(run, faulty) == {}
    assert (faulty / "pseudonym.key").stat().st_mode & 0o777 == 0o600
    raw = read_metadata(faulty)
    assert (raw.age[cache.metadata_row].to_numpy() == cache.age.to_numpy()).all()
    assert rej.patient_id.notna().all() and not rej.patient_id.isin(raw.patient_id).any()
    skipped = pd.read_csv(run / "02_preprocessing" / "cache" / "skipped.csv")
    assert sorted(skipped.metadata_row) == [11, 12, 13] and not skipped.reason.str.contains(str(faulty)).any()
