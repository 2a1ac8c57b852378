"""subspace-hub's ``abs_rel`` metric as an ``evaluate`` module: ``evaluate.load(<this folder>)``."""

import subspace_hub.metrics.hf_evaluate as _hub


class AbsRel(_hub.SubspaceHubMetric):
    metric_name = "abs_rel"
