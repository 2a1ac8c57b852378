"""subspace-hub's ``sq_rel`` metric as an ``evaluate`` module: ``evaluate.load(<this folder>)``."""

import subspace_hub.metrics.hf_evaluate as _hub


class SqRel(_hub.SubspaceHubMetric):
    metric_name = "sq_rel"
