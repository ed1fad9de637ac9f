import Foundation

/// What a Foundation file operation's error says about the file system, for errors that must name the disk.
public enum FileSystemFailure {
    /// The POSIX error code behind `error` (its own, or its underlying error's), if any.
    public static func posixCode(of error: any Error) -> Int32? {
        let nsError = error as NSError
        let underlying = nsError.userInfo[NSUnderlyingErrorKey] as? NSError
        return [nsError, underlying].compactMap { $0 }.first { $0.domain == NSPOSIXErrorDomain }.map { Int32($0.code) }
    }

    /// Whether `error` means the disk (or the user's quota) is full.
    public static func isOutOfSpace(_ error: any Error) -> Bool {
        let code = posixCode(of: error)
        return code == ENOSPC || code == EDQUOT || (error as NSError).code == CocoaError.fileWriteOutOfSpace.rawValue
    }
}
