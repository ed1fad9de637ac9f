/// The last layer on the rows the outputs read: a sequence classifier pools its first row and a CLS or last-token
/// embedding one row, so after the last attention (which still reads every row's keys and values) the rest of that
/// layer (the attention output, the feed-forward layer, about three quarters of a layer's products) runs on one row
/// per sequence instead of all of them. Every row is computed exactly as before, so outputs do not change.
extension ForwardPass {
    /// The one row of each of `sequences` its output reads (an index into the batch's rows), or nil when some output
    /// reads more than one (a mean, a token classifier).
    func readRows(groups: [Group], sequences: [EncodedInput], offsets: [Int]) -> [Int]? {
        var rows: [Int] = []
        rows.reserveCapacity(sequences.count)
        for group in groups {
            let last: Bool
            if let head = group.adapter?.head {
                guard !head.perToken, head.pooling == .first else { return nil }
                last = false
            } else {
                switch config.pooling.mode {
                case .cls: last = false
                case .lastToken: last = true
                default: return nil
                }
            }
            for sequence in group.sequences {
                rows.append(offsets[sequence] + (last ? max(sequences[sequence].ids.count - 1, 0) : 0))
            }
        }
        return rows
    }
}

extension ForwardPass.Batch {
    /// Keeps only `rows` (one per sequence, ascending) of the stream and the attention context, moved to the front in
    /// order, and regroups the batch so that group `g`'s rows are its sequences' indices.
    mutating func keep(rows kept: [Int], width: Int) {
        for (index, row) in kept.enumerated() where row != index {
            // `row` > `index`, and every later source row lies past it, so no source is overwritten before it is read.
            (x + index * width).update(from: x + row * width, count: width)
            (context + index * width).update(from: context + row * width, count: width)
        }
        rows = kept.count
        groups = groups.map { ForwardPass.Group(adapter: $0.adapter, sequences: $0.sequences, rows: $0.sequences) }
    }
}
