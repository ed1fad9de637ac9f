import AdapterFormats

extension AdapterName {
    /// Throws `StoreError.invalidName` when `value` is not acceptable.
    public static func check(_ value: String, field: String) throws(StoreError) {
        if let rule = problem(with: value) { throw .invalidName(field: field, value: value, rule: rule) }
    }
}
