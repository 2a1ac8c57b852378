"""subspace-hub's ``normal_consistency`` metric as an ``evaluate`` module: ``evaluate.load(<this folder>)``."""

import subspace_hub.metrics.hf_evaluate as _hub


class NormalConsistency(_hub.SubspaceHubMetric):
    metric_name = "normal_consistency"
