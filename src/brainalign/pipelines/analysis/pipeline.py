"""analysis wiring: collect cells -> encoding_scores -> ROI summary, plots, report."""
from __future__ import annotations

from kedro.pipeline import Pipeline, node

from ..encoding.pipeline import cell_namespace
from ..grid import (Grid, bind, feature_layout, lowlevel_impact_name, removal_probe_cells, similarity_pairs,
                    tuning_baseline)
from . import nodes


def create_pipeline(grid: Grid | None = None, **kwargs) -> Pipeline:
    grid = grid or Grid((), (), ())
    cells = [f"{cell_namespace(s, c, k)}.scores" for s in grid.subjects for c, k in grid.cells()]
    tuned = [s for s in grid.specs if s.kind == "tuned"]
    maps = []
    if grid.brain_maps:
        maps = [node(nodes.brain_maps, ["encoding_scores", "reference_image", "params:brain_maps",
                                        "params:dataset", *[f"{s}.targets" for s in grid.subjects]],
                     ["brain_map_glass", "brain_map_surface", "brain_map_html", "brain_map_nifti"],
                     name="brain_maps")]
    if grid.flatmap:  # brain_maps.pycortex.subject is set (optional extra brainalign[pycortex])
        maps.append(node(bind(nodes.pycortex_flatmap, subjects=list(grid.subjects)),
                         ["encoding_scores", "params:brain_maps", "params:dataset",
                          *[f"{s}.targets" for s in grid.subjects]],
                         "brain_map_flatmap", name="pycortex_flatmap"))
    if grid.partition:
        maps += [node(nodes.collect_partition, [f"{s}.partition.scores" for s in grid.subjects], "partition_scores",
                      name="collect_partition"),
                 node(nodes.partition_summary, ["partition_scores", "params:group_tests"], "partition_summary",
                      name="partition_summary"),
                 node(nodes.partition_plot, ["partition_summary", "params:dataset"], "partition_plot",
                      name="plot_partition")]
    if grid.removal:   # property removal: drop table with tests, probes, heat map
        drops = [f"{cell_namespace(s, c, k)}.removal_drop" for s in grid.subjects for c, *_ in grid.removal
                 for k in grid.layers_of(c)]
        summaries = [f"{c}.{Grid.layer_name(k)}.removal_summary" for c, *_ in grid.removal for k in grid.layers_of(c)]
        probes = [f"{src}.{Grid.layer_name(k)}.probes" for src, k in removal_probe_cells(grid)]
        maps += [node(bind(nodes.removal_drop_table, n_drops=len(drops)),
                      [*drops, *[f"{d}_roi" for d in drops], "params:group_tests"], "removal_drop",
                      name="removal_drop"),
                 node(bind(nodes.probe_table, n_probes=len(probes)), [*probes, *summaries], "probe_accuracy",
                      name="probe_accuracy"),
                 node(nodes.removal_plot, ["removal_drop", "probe_accuracy", "params:dataset"], "removal_plot",
                      name="plot_removal")]
    brain = [c for c, _, _ in grid.brain]
    sources = list(dict.fromkeys(src for _, src, _ in grid.brain))
    impact = {c: lowlevel_impact_name(c) for c in [*sources, *brain] if lowlevel_impact_name(c) in grid.conditions}
    if brain:   # brain-tuning: gain over the source, low-level impact, data efficiency, downstream probes
        from ..brain_tuning import nodes as bt_nodes

        left_out = [s for s in grid.subjects if s not in grid.brain_subjects]
        maps += [node(bt_nodes.collect_tables, [f"{s}.data_efficiency" for s in left_out],
                      "brain_tuning_efficiency", name="collect_data_efficiency") if left_out else
                 node(bt_nodes.no_left_out_subject, "params:brain_tuning", "brain_tuning_efficiency",
                      name="collect_data_efficiency"),
                 node(bind(bt_nodes.brain_tuning_tables, pairs=[(c, src) for c, src, _ in grid.brain], impact=impact),
                      ["encoding_scores", "brain_tuning_efficiency", "brain_tuning_downstream", "params:group_tests"],
                      ["brain_tuning_gain", "lowlevel_impact", "brain_tuning_plot_report"], name="brain_tuning_report")]
    if grid.decoding:   # group decoding table and figure
        maps += [node(nodes.decoding_summary_table, ["decoding_scores", "params:group_tests"], "decoding_summary",
                      name="decoding_summary"),
                 node(nodes.decoding_plot, ["decoding_summary", "params:dataset"], "decoding_plot",
                      name="plot_decoding")]
    pairs, skipped = similarity_pairs(grid)
    if pairs or skipped:   # representational similarity of each condition to its base, per layer
        keys = list(dict.fromkeys([(c, k) for c, _, k in pairs] + [(b, k) for _, b, k in pairs]))
        conds = {c for c, _ in keys}
        maps.append(node(bind(nodes.similarity_node, keys=keys, pairs=pairs, skipped=skipped,
                              layouts={c: feature_layout(grid, c) for c in conds}),
                         ["folds", "tr_grids", "params:embedding", "params:similarity",
                          *[f"{c}.{Grid.layer_name(k)}.tr_features" for c, k in keys]], "similarity",
                         name="representational_similarity"))
    if grid.tuning:   # the tuning comparison study: methods x tasks x ROIs, encoding and decoding
        maps.append(node(bind(nodes.tuning_comparison, baseline=tuning_baseline(grid)),
                         {"encoding": "encoding_scores", "conditions": "conditions_table",
                          "params": "params:group_tests", "dataset": "params:dataset",
                          **({"decoding": "decoding_scores"} if grid.decoding else {}),
                          **({"similarity": "similarity"} if pairs or skipped else {})},
                         ["tuning_comparison", "tuning_tests", "tuning_correlations", "tuning_similarity_by_method",
                          "tuning_claims", "tuning_comparison_plot"], name="tuning_comparison"))
    generated = {c for c, _, _ in grid.tuning} | {c for c, *_ in grid.removal} | set(brain) | set(impact.values())
    main = Pipeline([
        node(nodes.collect_scores, cells, "encoding_scores", name="collect_scores"),
        node(nodes.group_tests_table, ["encoding_scores", "params:group_tests"], "group_tests", name="group_tests"),
        node(nodes.subject_intervals_table, "encoding_scores", "subject_intervals", name="subject_intervals"),
        node(bind(nodes.conditions_table, tuned=[s.name for s in tuned],
                  made={s.name: dict(s.params) for s in grid.specs if s.name in generated}),
             ["params:conditions", *[s.params["model_dataset"] for s in tuned]], "conditions_table",
             name="conditions_table"),
        node(nodes.collect_exclusions, [f"{s}.exclusions" for s in grid.subjects], "exclusions",
             name="collect_exclusions"),
        node(nodes.summarise, ["encoding_scores", "noise_ceiling"], "roi_summary", name="roi_summary"),
        node(nodes.recovery, ["encoding_scores", "ground_truth"], "ground_truth_recovery",
             name="ground_truth_recovery"),
        node(nodes.layer_profile_plot, ["roi_summary", "params:dataset"], "layer_profile_plot",
             name="plot_layer_profile"),
        node(nodes.roi_bar_plot, ["roi_summary", "params:dataset"], "roi_bar_plot", name="plot_roi_bars"),
        node(nodes.recovery_plot, ["encoding_scores", "ground_truth", "ground_truth_recovery"],
             "recovery_plot", name="plot_recovery"),
        node(nodes.report, ["roi_summary", "ground_truth_recovery", "exclusions", "encoding_scores",
                            "params:dataset"], ["summary_md", "tracking_metrics"], name="report"),
    ] + maps)
    # the report index reads every output that no other node reads (figures, tables, maps), so it lists
    # them all and kedro-viz shows one index instead of a row of ~30 report files
    ends = sorted(main.outputs() - {"summary_md", "tracking_metrics"})
    index = node(bind(nodes.report_index, names=ends), ["params:dataset", *ends], "report_index", name="report_index")
    return Pipeline([main, index], tags="analysis")

