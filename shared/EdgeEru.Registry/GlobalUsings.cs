global using IdSet = EdgeEru.Registry.Snapshot.PersistentSortedSet<string, EdgeEru.Registry.Snapshot.SelfKey>;
global using ViewSet = EdgeEru.Registry.Snapshot.PersistentSortedSet<
    EdgeEru.Registry.Snapshot.WorkloadView, EdgeEru.Registry.Snapshot.WorkloadView.KeyById>;
global using AddressSet = EdgeEru.Registry.Snapshot.PersistentSortedSet<
    EdgeEru.Registry.Snapshot.AddressEntry, EdgeEru.Registry.Snapshot.AddressEntry.KeyByAddress>;
