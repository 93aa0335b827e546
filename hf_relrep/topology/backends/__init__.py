"""Persistence backends: each file one way of finding the minimum spanning trees of many point clouds, one interface.

Every backend is a :class:`~hf_relrep.topology.backends.base.PersistenceBackend`: a name, the clouds it refuses
(``refusal``), the differentiable tree edge lengths of many clouds at once (``tree_lengths``) and the deviation loss
:math:`\\sum |w - \\beta|` of densification (``deviation_losses``, fused into one node where the backend has one).

- ``base``: the interface, the differentiable lengths of given edges, the centred Gram product;
- ``boruvka``: batched Borůvka rounds in torch, on any device, no host synchronisation;
- ``host_prim``: Prim's algorithm on the host for CPU clouds, one autograd node (fused deviation loss), shared by
- ``numpy_prim``: its kernels in NumPy, and ``numba_prim``: compiled with Numba where it imports (imported lazily);
- ``gudhi``: gudhi's persistence pairs, a reference (imported lazily).

Which backend computes which clouds is decided in one place, :mod:`hf_relrep.topology.dispatch`; a backend file
exports ``dispatch_<name>(n, device)`` returning the backend or ``None``.
"""
