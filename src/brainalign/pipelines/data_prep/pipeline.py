"""data_prep wiring: (simulate | download ->) raw_study -> words, tr_grids, folds, ground_truth
(+ reference_image when brain maps are on); per subject (namespace ``data_prep.<subject>``): responses,
targets, exclusions; then noise_ceiling.

With ``study.download`` (real studies) ``download_study`` fetches a missing study first: the
nodes that read ``raw_study`` take its report ``study_download`` as an input, so Kedro orders it
first. Building this pipeline reads and downloads nothing."""
from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from ..grid import Grid, bind
from . import nodes


def subject_template(subject: str, after: tuple[str, ...] = ()) -> Pipeline:
    """Template for one subject; wrapped in the subject's namespace. ``after``: datasets that
    only order the node (the download report)."""
    return Pipeline([node(bind(nodes.prepare_responses, subject=subject),
                          ["raw_study", "tr_grids", "params:study", *after],
                          ["responses", "targets", "exclusions"], name="prepare_responses")])


def create_pipeline(grid: Grid | None = None, **kwargs) -> Pipeline:
    grid = grid or Grid((), (), ())
    common = []
    after: tuple[str, ...] = ()
    if grid.simulate:
        common.append(node(nodes.simulate, ["params:synthetic", "params:study"], "raw_study", name="simulate_study"))
    elif grid.download:
        common.append(node(nodes.download_study, "params:study", "study_download", name="download_study"))
        after = ("study_download",)
    common += [
        node(nodes.read_stimuli, ["raw_study", "params:study", *after], ["words", "tr_grids"], name="read_stimuli"),
        node(nodes.read_ground_truth, ["raw_study", *after], "ground_truth", name="read_ground_truth"),
        node(nodes.make_folds, ["tr_grids", "params:cv", "raw_study", *after], "folds", name="make_folds"),
    ]
    if grid.needs("stimulus_audio"):  # a speech or audio-based low-level condition reads the story audio
        common += [node(nodes.read_audio, ["raw_study", "words", "tr_grids", "params:embedding"], "stimulus_audio",
                        name="read_audio"),
                   node(nodes.audio_plot, ["stimulus_audio", "words", "params:embedding"], "audio_plot",
                        name="plot_audio")]
    if grid.needs("phones"):
        common.append(node(nodes.read_phones, ["raw_study", "tr_grids"], "phones", name="read_phones"))
    if grid.needs("stimulus_predictors"):
        names = sorted({n for s in grid.specs if "stimulus_predictors" in s.inputs for n in s.params["predictors"]})
        common.append(node(bind(nodes.read_predictors, names=names), ["raw_study", "tr_grids"], "stimulus_predictors",
                           name="read_predictors"))
    if grid.needs("annotations"):   # property removal: linguistic properties of each word
        common.append(node(nodes.annotate_words, ["words", "params:removal", "params:dataset"], "annotations",
                           name="annotate_words"))
    if grid.brain_maps:  # the voxel grid the analysis stage draws on (it never reads raw_study)
        common.append(node(nodes.reference_image, ["raw_study", *after], "reference_image",
                           name="reference_image"))
    # namespace data_prep.<subject> (outputs keep their <subject>.* names): brain_tuning reads every
    # subject's responses and feeds the subjects' encoding cells (namespace <subject>.<condition>.layer_k),
    # so a shared <subject> namespace would be interrupted by it
    subjects = [pipeline(subject_template(s, after), namespace=f"data_prep.{s}",
                         inputs={"raw_study", "tr_grids", *after}, parameters={"params:study"},
                         outputs={d: f"{s}.{d}" for d in ("responses", "targets", "exclusions")})
                for s in grid.subjects]
    nc_inputs = ["raw_study", "tr_grids", "folds", "params:study"] + [f"{s}.{d}" for s in grid.subjects for d in ("responses", "targets")]
    nc = [node(bind(nodes.noise_ceiling, subjects=list(grid.subjects)), nc_inputs, "noise_ceiling",
               name="noise_ceiling")]
    return Pipeline(common + subjects + nc, tags="data_prep")
