package store

// Stats is what the store reports about itself for /metrics: space,
// read amplification, compaction and flush activity, memtables, the
// write-ahead log and the block cache, and the store's own counters. It
// is the store's type rather than the engine's, so that the server keeps
// exporting the same figures whatever backend the store runs on; a backend
// without a figure leaves it 0.
type Stats struct {
	DiskBytes         uint64 // everything the store keeps on disk
	ReadAmplification uint64 // tables a read may have to consult
	Tables            uint64
	TableBytes        uint64
	Compactions       uint64 // since Open
	CompactionDebt    uint64 // bytes compactions are estimated to still have to write
	Flushes           uint64 // since Open
	MemtableBytes     uint64
	Memtables         uint64
	WALBytes          uint64 // live write-ahead log
	WALWrittenBytes   uint64 // written to the write-ahead log since Open
	BlockCacheBytes   uint64
	BlockCacheHits    uint64
	BlockCacheMisses  uint64
	BackgroundYields  uint64 // as BackgroundYields
	DamagedFrames     uint64 // as DamagedFrames
	// SweptApprovals and SweptActivationCodes count what the sweeps
	// expired since Open (SweepApprovals, SweepActivationCodes).
	SweptApprovals       uint64
	SweptActivationCodes uint64
}

// Stats returns the store's statistics; false once the store is closed or
// has given up (ErrFatal), when there is nothing meaningful to report.
func (db *DB) Stats() (Stats, bool) {
	c, err := db.admit(nil)
	if err != nil {
		return Stats{}, false
	}
	defer c.end()
	m := db.pdb.Metrics()
	total := m.Total()
	return Stats{
		DiskBytes:         m.DiskSpaceUsage(),
		ReadAmplification: uint64(m.ReadAmp()),
		Tables:            uint64(total.TablesCount),
		TableBytes:        uint64(total.TablesSize),
		Compactions:       uint64(m.Compact.Count),
		CompactionDebt:    m.Compact.EstimatedDebt,
		Flushes:           uint64(m.Flush.Count),
		MemtableBytes:     m.MemTable.Size,
		Memtables:         uint64(m.MemTable.Count),
		WALBytes:          m.WAL.Size,
		WALWrittenBytes:   m.WAL.BytesWritten,
		BlockCacheBytes:   uint64(m.BlockCache.Size),
		BlockCacheHits:    uint64(m.BlockCache.Hits),
		BlockCacheMisses:  uint64(m.BlockCache.Misses),
		BackgroundYields:  db.BackgroundYields(),
		DamagedFrames:     db.DamagedFrames(),

		SweptApprovals:       db.sweptApprovals.Load(),
		SweptActivationCodes: db.sweptActivationCodes.Load(),
	}, true
}
