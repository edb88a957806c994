"""Conversion between served versions of one stored kind (bootstrap.api.conversion)."""

from bootstrap.api import conversion

V2 = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
      "metadata": {"name": "web", "namespace": "d"},
      "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
               "minReplicas": 1, "maxReplicas": 3,
               "metrics": [
                   {"type": "Resource", "resource": {"name": "cpu", "target": {
                       "type": "Utilization", "averageUtilization": 50}}},
                   {"type": "Resource", "resource": {"name": "memory", "target": {
                       "type": "AverageValue", "averageValue": "100Mi"}}}],
               "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}},
      "status": {"currentReplicas": 2, "desiredReplicas": 2,
                 "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {
                     "averageUtilization": 30, "averageValue": "30m"}}}],
                 "conditions": [{"type": "AbleToScale", "status": "True"}]}}


def test_hpa_v2_to_v1_and_back_loses_nothing():
    v1 = conversion.convert(V2, "autoscaling/v1")
    assert v1["apiVersion"] == "autoscaling/v1"
    assert v1["spec"] == {"scaleTargetRef": V2["spec"]["scaleTargetRef"], "minReplicas": 1,
                          "maxReplicas": 3, "targetCPUUtilizationPercentage": 50}
    assert v1["status"] == {"currentReplicas": 2, "desiredReplicas": 2,
                            "currentCPUUtilizationPercentage": 30}
    annotations = v1["metadata"]["annotations"]
    assert set(annotations) == {conversion.HPA_METRICS, conversion.HPA_BEHAVIOR,
                                conversion.HPA_CONDITIONS}
    back = conversion.convert(v1, "autoscaling/v2")
    assert back["spec"] == V2["spec"]
    assert back["status"]["conditions"] == V2["status"]["conditions"]
    assert "annotations" not in back["metadata"]
    assert conversion.convert(V2, "autoscaling/v2") is V2


def test_hpa_v1_without_target_scales_on_the_default_cpu_utilization():
    v1 = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
          "metadata": {"name": "a"}, "spec": {"maxReplicas": 2, "scaleTargetRef": {}}}
    v2 = conversion.convert(v1, "autoscaling/v2")
    assert v2["spec"]["metrics"] == [{"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": 80}}}]
    assert conversion.convert(v2, "autoscaling/v1")["spec"]["targetCPUUtilizationPercentage"] == 80


def test_events_field_mapping():
    core = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
            "involvedObject": {"kind": "Pod", "name": "p"}, "message": "hi", "reason": "R",
            "source": {"component": "kubelet", "host": "n1"}, "count": 3,
            "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:01:00Z",
            "reportingComponent": "kubelet", "type": "Normal",
            "series": {"count": 2, "lastObservedTime": "2026-01-01T00:01:00.000000Z"}}
    ev = conversion.convert(core, "events.k8s.io/v1")
    assert ev == {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
                  "regarding": {"kind": "Pod", "name": "p"}, "note": "hi", "reason": "R",
                  "deprecatedSource": {"component": "kubelet", "host": "n1"},
                  "deprecatedCount": 3, "deprecatedFirstTimestamp": "2026-01-01T00:00:00Z",
                  "deprecatedLastTimestamp": "2026-01-01T00:01:00Z",
                  "reportingController": "kubelet", "type": "Normal",
                  "series": core["series"]}
    assert conversion.convert(ev, "v1") == core
    # zero-valued deprecated fields are left out, as events.k8s.io/v1 omits them
    bare = conversion.convert(dict(core, count=0, source={}), "events.k8s.io/v1")
    assert "deprecatedCount" not in bare and "deprecatedSource" not in bare


def test_other_kinds_only_get_their_api_version_rewritten():
    obj = {"apiVersion": "example.com/v1", "kind": "Widget", "spec": {"a": 1}}
    assert conversion.convert(obj, "example.com/v2") == dict(obj, apiVersion="example.com/v2")
