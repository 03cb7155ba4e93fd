"""Volumetric BIDS-derivative layout (the embedded simulated study uses it).

Layout::

    stimuli/<story>_words.tsv                         onset, duration (or offset), word
    stimuli/<story>.wav                               story audio (optional; :meth:`audio`)
    roi_labels.tsv                                    index, name [, network]
    sub-XX/func/sub-XX_task-<story>_bold.nii.gz       4D BOLD; TR from the header
    sub-XX/func/sub-XX_task-<story>_desc-brain_mask.nii.gz
    sub-XX/func/sub-XX_task-<story>_desc-roi_dseg.nii.gz   integer ROI labels (0 = none)
    ground_truth.parquet                              (simulated studies only)

Word times are seconds from the first volume (``t0`` option, default 0, is the time of volume 0
on the word clock).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ...core.timing.stimuli import read_word_tsv
from .base import StudyReader


class BidsVolumeReader(StudyReader):
    name = "bids_volume"
    download_hint = "Put a BIDS-derivative study there (see docs/datasets.md) or run the default pipeline."

    def __init__(self, root, t0: float = 0.0):
        super().__init__(root)
        self.t0 = float(t0)

    def check(self) -> None:
        self.require(self.root / "stimuli", "the stimuli folder")
        if not self.subjects():
            raise FileNotFoundError(f"{self.root}: no sub-* folders")

    def subjects(self) -> list[str]:
        self.require(self.root, "the study directory")
        return sorted(p.name for p in self.root.glob("sub-*") if p.is_dir())

    def stories(self) -> list[str]:
        stim = self.require(self.root / "stimuli", "the stimuli folder")
        return sorted(p.name[: -len("_words.tsv")] for p in stim.glob("*_words.tsv"))

    def words(self) -> dict[str, pd.DataFrame]:
        return {s: read_word_tsv(self.root / "stimuli" / f"{s}_words.tsv") for s in self.stories()}

    def audio_path(self, story: str):
        return self.root / "stimuli" / f"{story}.wav"

    def audio(self, story: str):
        """``(waveform float32 (n_samples,), sample_rate)`` of ``stimuli/<story>.wav``, mono
        (channels averaged); sample 0 is time 0 of the word timings. A missing file is a
        :class:`~brainalign.io.readers.base.MissingDataError` naming the story and the path."""
        return self._read_audio(story, [self.audio_path(story)])

    def _path(self, subject: str, story: str, suffix: str):
        return self.require(self.root / subject / "func" / f"{subject}_task-{story}_{suffix}.nii.gz",
                            f"{suffix} image of subject {subject}, story {story}")

    def tr_grids(self) -> pd.DataFrame:
        import nibabel as nib

        rows = []
        for story in self.stories():
            seen = {}
            for subject in self.subjects():
                hdr = nib.load(self._path(subject, story, "bold")).header
                if len(hdr.get_data_shape()) != 4:
                    raise ValueError(f"{self._path(subject, story, 'bold')}: BOLD image is not 4D")
                seen[subject] = (int(hdr.get_data_shape()[3]), float(hdr.get_zooms()[3]))
            values = set(seen.values())
            if len(values) > 1:
                raise ValueError(f"story {story}: subjects disagree on (n_trs, TR): {seen}")
            n, tr = values.pop()
            if tr <= 0:
                raise ValueError(f"story {story}: TR missing from the NIfTI header (pixdim[4] = {tr})")
            rows.append({"story": story, "n_trs_total": n, "tr": tr, "t0": self.t0})
        return pd.DataFrame(rows)

    def _labels(self) -> dict[int, tuple[str, str]]:
        path = self.root / "roi_labels.tsv"
        if not path.exists():
            return {}
        t = pd.read_csv(path, sep="\t")
        net = t["network"] if "network" in t.columns else t["name"]
        return {int(i): (str(n), str(w)) for i, n, w in zip(t["index"], t["name"], net)}

    def responses(self, subject: str, stories: list[str] | None = None):
        import nibabel as nib

        labels = self._labels()
        out, sources, ref_mask = {}, {}, None
        targets = None
        for story in (self.stories() if stories is None else stories):
            bold_path = self._path(subject, story, "bold")
            mask_path = self._path(subject, story, "desc-brain_mask")
            bold = nib.load(bold_path)
            mask = np.asarray(nib.load(mask_path).dataobj) > 0
            if mask.shape != bold.shape[:3]:
                raise ValueError(f"{mask_path}: mask shape {mask.shape} differs from the BOLD image "
                                 f"{bold_path} ({bold.shape[:3]}); resample the mask to the BOLD grid")
            if ref_mask is None:
                ref_mask = mask
                dseg_path = self.root / subject / "func" / f"{subject}_task-{story}_desc-roi_dseg.nii.gz"
                if dseg_path.exists():
                    dseg = np.asarray(nib.load(dseg_path).dataobj).astype(int)
                    if dseg.shape != mask.shape:
                        raise ValueError(f"{dseg_path}: ROI image shape {dseg.shape} differs from the "
                                         f"mask {mask_path} ({mask.shape})")
                else:
                    dseg = np.zeros(mask.shape, int)
                ijk = np.nonzero(mask)
                lab = dseg[ijk]
                targets = pd.DataFrame({
                    "target": [f"v{i}_{j}_{k}" for i, j, k in zip(*ijk)],
                    "roi": [labels.get(v, (f"label_{v}" if v else "none", ""))[0] for v in lab],
                    "network": [labels.get(v, ("", "none" if not v else f"label_{v}"))[1] for v in lab],
                    "i": ijk[0], "j": ijk[1], "k": ijk[2]})
            elif not np.array_equal(mask, ref_mask):
                raise ValueError(f"{mask_path}: brain mask differs from the one of the subject's first "
                                 "story; all runs of a subject must share one voxel set")
            data = np.asarray(bold.dataobj, dtype=np.float32)[ref_mask]  # (n_vox, n_trs)
            out[story] = np.ascontiguousarray(data.T)
            sources[story] = str(bold_path)
        return out, targets, sources

    def reference_image(self, subject: str | None = None):
        """The brain mask of the subject's first story (the grid of ``i, j, k``)."""
        import nibabel as nib

        subject = subject or self.subjects()[0]
        return nib.load(self._path(subject, self.stories()[0], "desc-brain_mask"))

    def ground_truth(self) -> pd.DataFrame | None:
        path = self.root / "ground_truth.parquet"
        return pd.read_parquet(path) if path.exists() else None
