"""The controller manager's table, --controllers syntax, flags and wiring."""

import logging
from datetime import timedelta

import pytest

from bootstrap.agents import controllers
from bootstrap.agents.controllers import manager
from bootstrap.errors import UserError

pytestmark = pytest.mark.timeout(20)


def test_star_enables_all_but_the_default_disabled():
    on = manager.parse_controllers("*")
    assert "garbagecollector" in on and "namespace" in on
    assert "bootstrapsigner" not in on and "tokencleaner" not in on


def test_kubeadm_style_and_disable():
    on = manager.parse_controllers("*,bootstrapsigner,tokencleaner")
    assert {"bootstrapsigner", "tokencleaner", "deployment"} <= set(on)
    on = manager.parse_controllers("*,-podgc")
    assert "podgc" not in on and "nodelifecycle" in on
    assert manager.parse_controllers("namespace,serviceaccount") == ["namespace",
                                                                     "serviceaccount"]
    # the last mention wins, as upstream
    assert manager.parse_controllers("-namespace,namespace") == ["namespace"]
    assert manager.parse_controllers("") == manager.parse_controllers("*")


def test_unknown_controller_is_a_user_error():
    with pytest.raises(UserError) as exc:
        manager.parse_controllers("*,-nope")
    assert exc.value.where == "--controllers" and "'nope'" in exc.value.message


def test_main_rejects_unknown_controller_in_one_line(capsys):
    assert controllers.main(["--controllers=*,frobnicator"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown controller 'frobnicator'" in err[0]


def test_main_rejects_bad_cluster_cidr(capsys):
    assert controllers.main(["--allocate-node-cidrs", "--cluster-cidr=10.0.0.0/33"]) == 2
    assert "--cluster-cidr: invalid CIDR" in capsys.readouterr().err


def test_table_paths_of_other_owners():
    t = manager.CONTROLLERS
    assert t["deployment"].target == \
        "bootstrap.agents.controllers.deployment:DeploymentController"
    assert t["ttl-after-finished"].target == \
        "bootstrap.agents.controllers.ttlafterfinished:TTLAfterFinishedController"
    assert t["endpoint"].target == "bootstrap.agents.controllers.endpoints:EndpointsController"
    assert t["endpointslice"].target == \
        "bootstrap.agents.controllers.endpointslice:EndpointSliceController"
    assert t["garbagecollector"].service_account == "generic-garbage-collector"


def test_missing_module_is_a_warning_not_a_failure(caplog):
    table = {"ghost": manager.Entry("bootstrap.agents.controllers.no_such_module:Ghost", "x"),
             "namespace": manager.CONTROLLERS["namespace"]}
    with caplog.at_level(logging.WARNING):
        assert manager.load("ghost", table) is None
        assert manager.load("namespace", table).__name__ == "NamespaceController"
    assert "no_such_module does not exist" in caplog.text


def test_flags_reach_options():
    args = controllers.build_parser().parse_args([
        "--node-monitor-grace-period=4s", "--cluster-cidr=10.244.0.0/16",
        "--allocate-node-cidrs=true", "--node-cidr-mask-size=26",
        "--cluster-signing-duration=1h", "--terminated-pod-gc-threshold=5",
        "--use-service-account-credentials", "--concurrent-gc-syncs=3"])
    o = controllers.options_from_args(args)
    assert (o.node_monitor_grace_period, o.cluster_cidr, o.allocate_node_cidrs,
            o.node_cidr_mask_size, o.cluster_signing_duration, o.terminated_pod_gc_threshold,
            o.use_service_account_credentials, o.concurrent_gc_syncs) == (
        4.0, "10.244.0.0/16", True, 26, 3600.0, 5, True, 3)
    d = controllers.options_from_args(controllers.build_parser().parse_args([]))
    assert d.node_monitor_grace_period == 50.0 and d.node_cidr_mask_size == 0
    assert d.cluster_signing_duration == 8760 * 3600 and args.secure_port == 10257
    assert args.leader_elect is True and args.leader_elect_resource_name == \
        "kube-controller-manager"


def test_build_uses_from_options_and_may_skip():
    from bootstrap.agents.controllers.nodeipam import NodeIpamController
    from bootstrap.api.fake import FakeClient
    from bootstrap.api.informer import SharedInformerFactory
    client = FakeClient()
    factory = SharedInformerFactory(client)
    assert manager.build(NodeIpamController, client, factory, None, manager.Options()) is None
    ctl = manager.build(NodeIpamController, client, factory, None,
                        manager.Options(allocate_node_cidrs=True, cluster_cidr="10.1.0.0/16"))
    assert ctl.sets[0].mask_size == 24


def test_upstream_names_we_do_not_run_are_accepted(caplog):
    with caplog.at_level(logging.WARNING):
        on = manager.parse_controllers("*,-route,-service,ttl,bootstrapsigner")
    assert "bootstrapsigner" in on and "ttl" not in on
    assert "controller ttl is not implemented" in caplog.text


def test_bad_files_are_one_line_at_start(tmp_path, capsys):
    from bootstrap.pki.certs import CertSpec, cert_to_pem, create_ca
    from bootstrap.pki.keys import generate_key, key_to_pem
    key, other = generate_key("ECDSA-P256"), generate_key("ECDSA-P256")
    (tmp_path / "ca.crt").write_bytes(cert_to_pem(create_ca(
        CertSpec("kubernetes", is_ca=True), key, timedelta(days=1))))
    (tmp_path / "other.key").write_bytes(key_to_pem(other))
    (tmp_path / "ca.key").write_bytes(key_to_pem(key))
    cases = [
        ([f"--cluster-signing-cert-file={tmp_path}/ca.crt",
          f"--cluster-signing-key-file={tmp_path}/missing.key"],
         "--cluster-signing-key-file: cannot read"),
        ([f"--cluster-signing-cert-file={tmp_path}/ca.crt",
          f"--cluster-signing-key-file={tmp_path}/other.key"],
         "--cluster-signing-key-file: the key does not belong to the certificate"),
        ([f"--cluster-signing-cert-file={tmp_path}/ca.crt"],
         "both --cluster-signing-cert-file and --cluster-signing-key-file are needed"),
        ([f"--root-ca-file={tmp_path}/ca.key"], "--root-ca-file:"),
        ([f"--root-ca-file={tmp_path}/nope"], "--root-ca-file: cannot read"),
    ]
    for argv, message in cases:
        assert controllers.main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (argv, err)


@pytest.mark.parametrize("argv,message", [
    (["--node-monitor-grace-period=soon"], 'time: invalid duration "soon"'),
    (["--allocate-node-cidrs=maybe"], 'strconv.ParseBool: parsing "maybe"'),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["--terminated-pod-gc-threshold=many"], "invalid int value"),
])
def test_bad_flags_are_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        controllers.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


async def test_run_wires_existing_controllers_and_skips_missing(caplog):
    import argparse
    import asyncio

    from cmharness import until

    from bootstrap.api.fake import FakeClient
    from bootstrap.api.informer import SharedInformerFactory
    client = FakeClient()
    client.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"},
                 "status": {"phase": "Active"}})
    factory = SharedInformerFactory(client)
    table = {"ghost": manager.Entry("bootstrap.agents.controllers.ghost_module:Ghost", "g"),
             "serviceaccount": manager.CONTROLLERS["serviceaccount"],
             "nodeipam": manager.CONTROLLERS["nodeipam"]}
    with caplog.at_level(logging.INFO):
        task = asyncio.create_task(manager.run(
            ["ghost", "serviceaccount", "nodeipam"], manager.Options(), client, factory,
            argparse.Namespace(kubeconfig=None), table))
        try:
            await until(lambda: client.objects("serviceaccounts", "team"))
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await factory.stop()
    assert "controller ghost is not available" in caplog.text
    assert "controller nodeipam is not started with these flags" in caplog.text
    assert "starting controllers: serviceaccount" in caplog.text
