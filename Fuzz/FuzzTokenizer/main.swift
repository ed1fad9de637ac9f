// libFuzzer target: the WordPiece tokenizer (with the real model's vocabulary) on arbitrary text, decoded as UTF-8
// the way request bodies are. Every id must be in the vocabulary and at most maxLength ids come back. Built by
// scripts/fuzz with -sanitize=fuzzer. ADAPTERD_MODEL names the model directory.
import AdapterEngine
import Foundation

let tokenizer: WordPieceTokenizer = {
    let directory = ProcessInfo.processInfo.environment["ADAPTERD_MODEL"] ?? "models/all-MiniLM-L6-v2"
    do {
        return try WordPieceTokenizer(modelDirectory: directory)
    } catch {
        fatalError("FuzzTokenizer needs the model (ADAPTERD_MODEL): \(error)")
    }
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let encoding = tokenizer.encode(text)
    precondition(encoding.ids.count <= tokenizer.maxLength, "\(encoding.ids.count) ids for a limit of \(tokenizer.maxLength)")
    precondition(encoding.ids.allSatisfy { $0 >= 0 && Int($0) < tokenizer.vocabularySize }, "an id outside the vocabulary")
    return 0
}

// SwiftPM gives an executable its own entry point, so libFuzzer's driver is started from it.
@_silgen_name("LLVMFuzzerRunDriver")
func runDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>, _ body: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt) -> CInt
var (argc, argv) = (CommandLine.argc, Optional(CommandLine.unsafeArgv))
exit(runDriver(&argc, &argv, fuzz))
