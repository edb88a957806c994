"""etcd storage: client, codec and encryption, watch caches, allocation."""
