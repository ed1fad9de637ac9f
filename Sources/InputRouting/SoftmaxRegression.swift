import Foundation

/// Multinomial logistic regression with an L2 penalty on the weights, fitted by L-BFGS: the classifier of each
/// router stage. Convex, so the fit is deterministic and needs no learning rate.
public struct SoftmaxRegression: Sendable {
    /// Weights, classes × dimensions, row-major.
    public var weight: [Float]
    public var bias: [Float]
    public let classes: Int
    public let dimensions: Int

    /// Fits on `features` (`count` rows × `dimensions`, row-major) with labels in `0..<classes`, minimising mean
    /// cross-entropy + `lambda` / 2 · ‖W‖².
    public init(features: [Float], labels: [Int], classes: Int, dimensions: Int, lambda: Double, maxIterations: Int = 300) {
        self.classes = classes
        self.dimensions = dimensions
        let problem = Problem(x: features, y: labels, n: labels.count, d: dimensions, k: classes, lambda: lambda)
        var theta = [Float](repeating: 0, count: classes * dimensions + classes)
        LBFGS.minimize(&theta, maxIterations: maxIterations) { problem.lossAndGradient($0) }
        weight = Array(theta[0..<(classes * dimensions)])
        bias = Array(theta[(classes * dimensions)...])
    }

    /// Class probabilities for each of `count` rows of `features`.
    public func probabilities(_ features: [Float], count: Int) -> [[Float]] {
        let logits = Problem.logits(features, count, dimensions, classes, weight, bias)
        return (0..<count).map { row in RouterStage.softmax(Array(logits[(row * classes)..<((row + 1) * classes)])) }
    }

    /// The objective over the packed parameters `[W (k × d), b (k)]`.
    struct Problem {
        let x: [Float]
        let y: [Int]
        let n: Int, d: Int, k: Int
        let lambda: Double

        static func logits(_ x: [Float], _ n: Int, _ d: Int, _ k: Int, _ w: [Float], _ b: [Float]) -> [Float] {
            var out = [Float](repeating: 0, count: n * k)
            for row in 0..<n { for c in 0..<k { out[row * k + c] = b[c] } }
            // Small products (a few hundred rows × a few classes): plain loops beat a BLAS call and its thread team.
            x.withUnsafeBufferPointer { x in
                w.withUnsafeBufferPointer { w in
                    for row in 0..<n {
                        let xr = x.baseAddress! + row * d
                        for c in 0..<k {
                            let wc = w.baseAddress! + c * d
                            var sum: Float = 0
                            for j in 0..<d { sum += xr[j] * wc[j] }
                            out[row * k + c] += sum
                        }
                    }
                }
            }
            return out
        }

        func lossAndGradient(_ theta: [Float]) -> (Double, [Float]) {
            let w = Array(theta[0..<(k * d)])
            let b = Array(theta[(k * d)...])
            var g = Self.logits(x, n, d, k, w, b)
            var loss = 0.0
            for row in 0..<n {
                let base = row * k
                var top = -Float.infinity
                for c in 0..<k { top = max(top, g[base + c]) }
                var total = 0.0
                for c in 0..<k { total += Foundation.exp(Double(g[base + c] - top)) }
                loss += log(total) - Double(g[base + y[row]] - top)
                // g becomes (p - onehot) / n: the gradient with respect to the logits.
                for c in 0..<k {
                    let p = Foundation.exp(Double(g[base + c] - top)) / total
                    g[base + c] = Float((p - (c == y[row] ? 1 : 0)) / Double(n))
                }
            }
            loss /= Double(n)
            var gradient = [Float](repeating: 0, count: theta.count)
            var penalty = 0.0
            for index in 0..<(k * d) {
                penalty += Double(w[index]) * Double(w[index])
                gradient[index] = Float(lambda) * w[index]
            }
            loss += lambda / 2 * penalty
            // dW[k × d] += gᵀ[k × n] · x[n × d]
            g.withUnsafeBufferPointer { g in
                x.withUnsafeBufferPointer { x in
                    gradient.withUnsafeMutableBufferPointer { out in
                        for row in 0..<n {
                            let xr = x.baseAddress! + row * d
                            for c in 0..<k {
                                let scale = g[row * k + c]
                                let oc = out.baseAddress! + c * d
                                for j in 0..<d { oc[j] += scale * xr[j] }
                            }
                        }
                    }
                }
            }
            for row in 0..<n { for c in 0..<k { gradient[k * d + c] += g[row * k + c] } }
            return (loss, gradient)
        }
    }
}

/// Limited-memory BFGS with a backtracking (Armijo) line search, for small smooth convex problems.
enum LBFGS {
    static func minimize(_ x: inout [Float], maxIterations: Int, memory: Int = 10, _ f: ([Float]) -> (Double, [Float])) {
        var (value, gradient) = f(x)
        var steps: [(s: [Double], y: [Double], rho: Double)] = []
        for _ in 0..<maxIterations {
            let gradientNorm = gradient.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            if gradientNorm < 1e-6 { break }
            // Two-loop recursion: direction = -H · gradient.
            var q = gradient.map(Double.init)
            var alphas: [Double] = []
            for step in steps.reversed() {
                let alpha = step.rho * dot(step.s, q)
                alphas.append(alpha)
                for i in q.indices { q[i] -= alpha * step.y[i] }
            }
            if let last = steps.last {
                let gamma = dot(last.s, last.y) / dot(last.y, last.y)
                for i in q.indices { q[i] *= gamma }
            } else {
                for i in q.indices { q[i] /= max(gradientNorm, 1) }
            }
            for (step, alpha) in zip(steps, alphas.reversed()) {
                let beta = step.rho * dot(step.y, q)
                for i in q.indices { q[i] += step.s[i] * (alpha - beta) }
            }
            let direction = q.map { -$0 }
            let slope = zip(direction, gradient).reduce(0.0) { $0 + $1.0 * Double($1.1) }
            guard slope < 0 else {
                steps.removeAll()
                continue
            }
            var t = 1.0
            var candidate = x
            var next: (Double, [Float]) = (value, gradient)
            var accepted = false
            for _ in 0..<40 {
                for i in x.indices { candidate[i] = x[i] + Float(t * direction[i]) }
                next = f(candidate)
                if next.0 <= value + 1e-4 * t * slope {
                    accepted = true
                    break
                }
                t /= 2
            }
            guard accepted else { break }
            let s = zip(candidate, x).map { Double($0) - Double($1) }
            let y = zip(next.1, gradient).map { Double($0) - Double($1) }
            let sy = dot(s, y)
            if sy > 1e-12 {
                steps.append((s, y, 1 / sy))
                if steps.count > memory { steps.removeFirst() }
            }
            let improvement = value - next.0
            x = candidate
            (value, gradient) = next
            if improvement < 1e-10 * max(1, abs(value)) { break }
        }
    }

    private static func dot(_ a: [Double], _ b: [Double]) -> Double {
        var sum = 0.0
        for i in a.indices { sum += a[i] * b[i] }
        return sum
    }
}
