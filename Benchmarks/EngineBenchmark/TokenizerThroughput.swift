// Tokenizer throughput: the engine's tokenizer alone over a file of texts, beside Hugging Face `tokenizers`
// (Benchmarks/tokenizer_peer.py, the same texts and metrics; Benchmarks/run-tokenizers runs both and checks that
// they give the same ids first). Nothing is checked here: this only times, or dumps the ids.
//
// usage: EngineBenchmark --tokenize MODEL_DIR TEXTS_FILE [--dump-ids] [--rounds N] [--seconds S] [--max-length L]
//   TEXTS_FILE: JSON lines with a "text" field. --dump-ids prints one JSON array of ids per text, in order.
//   Otherwise: a warm-up, then N rounds (default 5), each over all texts repeated so that it takes about S seconds
//   (default 0.7); the median texts/s and tokens/s (ids counted with the special tokens) as JSON lines.
//   L (default 128): the engine's default maximum length, special tokens included. BertModel also caps it by the
//   model's positions (max_position_embeddings less RoBERTa's padding offset); that cap is above 128 for every
//   model Benchmarks/run-tokenizers uses, so it is not applied here.
import AdapterEngine
import Foundation

/// Runs `--tokenize` (its arguments after the flag); the process's exit status.
func tokenizerThroughput(_ commandArguments: [String]) -> Int32 {
    var rest = commandArguments
    func value(_ name: String) -> String? {
        guard let index = rest.firstIndex(of: name), index + 1 < rest.count else { return nil }
        defer { rest.removeSubrange(index...(index + 1)) }
        return rest[index + 1]
    }
    let rounds = max(1, value("--rounds").flatMap(Int.init) ?? 5)
    let seconds = value("--seconds").flatMap(Double.init) ?? 0.7
    let maxLength = value("--max-length").flatMap(Int.init) ?? 128
    let dumpIDs = rest.contains("--dump-ids")
    rest.removeAll { $0 == "--dump-ids" }
    guard rest.count == 2 else {
        FileHandle.standardError.write(Data("usage: EngineBenchmark --tokenize MODEL_DIR TEXTS_FILE [--dump-ids] [--rounds N] [--seconds S] [--max-length L]\n".utf8))
        return 2
    }
    let (modelDirectory, textsFile) = (rest[0], rest[1])

    let tokenizer: Tokenizer
    let texts: [String]
    do {
        tokenizer = try Tokenizer(modelDirectory: modelDirectory, maxLength: maxLength)
        texts = try String(contentsOfFile: textsFile, encoding: .utf8).split(separator: "\n").compactMap { line -> String? in
            guard !line.allSatisfy(\.isWhitespace) else { return nil }
            return (try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["text"] as? String
        }
    } catch {
        FileHandle.standardError.write(Data("--tokenize: \(error)\n".utf8))
        return 1
    }
    guard !texts.isEmpty else {
        FileHandle.standardError.write(Data("--tokenize: no texts in \(textsFile)\n".utf8))
        return 1
    }

    if dumpIDs {
        var out = ""
        for text in texts {
            out += "[" + tokenizer.encode(text).ids.map(String.init).joined(separator: ",") + "]\n"
        }
        FileHandle.standardOutput.write(Data(out.utf8))
        return 0
    }

    // One pass over all texts `repeats` times: (seconds, ids produced).
    let clock = ContinuousClock()
    func pass(_ repeats: Int) -> (seconds: Double, ids: Int) {
        var ids = 0
        let elapsed = clock.measure {
            for _ in 0..<repeats {
                for text in texts { ids += tokenizer.encode(text).ids.count }
            }
        }
        return (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18, ids)
    }
    // Warm-up (about 0.2 s), which also measures a pass and sets the repeats for a round of about `seconds`.
    var warm = 0.0, warmPasses = 0
    while warm < 0.2 || warmPasses < 2 {
        warm += pass(1).seconds
        warmPasses += 1
    }
    let repeats = max(1, Int((seconds / (warm / Double(warmPasses))).rounded()))
    var textRates: [Double] = [], tokenRates: [Double] = []
    for _ in 0..<rounds {
        let (elapsed, ids) = pass(repeats)
        textRates.append(Double(repeats * texts.count) / elapsed)
        tokenRates.append(Double(ids) / elapsed)
    }
    func middle(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }
    FileHandle.standardError.write(Data("adapterd tokenizer: \(texts.count) texts × \(repeats) per round, \(rounds) rounds\n".utf8))
    for (metric, value, unit) in [("tokenize_texts_per_s", middle(textRates), "texts/s"), ("tokenize_tokens_per_s", middle(tokenRates), "tokens/s")] {
        print("{\"engine\":\"adapterd\",\"metric\":\"\(metric)\",\"value\":\(value),\"unit\":\"\(unit)\"}")
    }
    fflush(nil)
    return 0
}
