global using ViewSet = EdgeEru.Registry.Snapshot.PersistentSortedSet<
    EdgeEru.Registry.Snapshot.WorkloadView, EdgeEru.Registry.Snapshot.WorkloadView.KeyById>;
