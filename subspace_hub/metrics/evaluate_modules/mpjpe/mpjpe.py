"""subspace-hub's ``mpjpe`` metric as an ``evaluate`` module: ``evaluate.load(<this folder>)``."""

import subspace_hub.metrics.hf_evaluate as _hub


class Mpjpe(_hub.SubspaceHubMetric):
    metric_name = "mpjpe"
