"""The cluster's agents (API server, scheduler, controllers, kubelet, proxy).

Installed on hosts by the toolkit, never imported by it.
"""
