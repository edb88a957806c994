"""Cluster configuration and inventories: typed, defaulted, validated.

Public API::

    from bootstrap.config.cluster import load_cluster_config, default_config, dump_cluster_config
    from bootstrap.config.inventory import load_inventory, Inventory, Host
    from bootstrap.config.model import ClusterConfig, Networking, Etcd, LocalEtcd, ExternalEtcd, APIServer
    from bootstrap.config.duration import parse_duration, format_duration

Everything wrong with a user's file is a ``bootstrap.errors.UserError`` whose one
line names the file (and line), the field or host, and the fix.
"""
