import AdapterFormats
import GRDB

// Stored as its raw value in the registry's `state` column.
extension AdapterState: DatabaseValueConvertible {}

// Stored as its raw value in the registry's `kind` column.
extension ArtifactKind: DatabaseValueConvertible {}
