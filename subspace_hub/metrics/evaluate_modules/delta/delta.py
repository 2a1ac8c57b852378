"""subspace-hub's ``delta`` metric as an ``evaluate`` module: ``evaluate.load(<this folder>)``."""

import subspace_hub.metrics.hf_evaluate as _hub


class Delta(_hub.SubspaceHubMetric):
    metric_name = "delta"
