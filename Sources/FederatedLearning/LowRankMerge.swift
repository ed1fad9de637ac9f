import Foundation

/// The exact weighted mean of LoRA products, re-factored to the rank: Σ wᵢ·Bᵢ·Aᵢ is stacked as
/// [w₁B₁ … w_kB_k]·[A₁; …; A_k] (rank ≤ k·r), both stacks are reduced by QR, the small core's SVD gives the
/// product's singular triplets, and the top `rank` are kept (the best rank-r approximation of the mean, where FedIT's
/// mean of factors is not even the mean). The new A has orthonormal rows; B carries the singular values.
/// Double precision throughout: the matrices are small (k·r columns).
public enum LowRankMerge {
    /// The rank-`rank` factors (A `rank×inputs`, B `outputs×rank`, row-major) of Σ weights[i]·B[i]·A[i].
    public static func merge(
        pairs: [(a: [Float], b: [Float])], weights: [Double], rank: Int, inputs: Int, outputs: Int
    ) -> (a: [Float], b: [Float]) {
        let k = pairs.count, m = k * rank
        // Columns of the stacks: stackB (outputs × m) column j is weights[i]·B[i][:, c]; stackA^T (inputs × m) column
        // j is A[i][c, :].
        var columnsB: [[Double]] = [], columnsA: [[Double]] = []
        for (pair, weight) in zip(pairs, weights) {
            for c in 0..<rank {
                columnsB.append((0..<outputs).map { weight * Double(pair.b[$0 * rank + c]) })
                columnsA.append((0..<inputs).map { Double(pair.a[c * inputs + $0]) })
            }
        }
        let (qB, rB) = qr(columnsB)
        let (qA, rA) = qr(columnsA)
        // core = R_B · R_Aᵀ (m × m), row-major.
        var core = [Double](repeating: 0, count: m * m)
        for i in 0..<m {
            for j in 0..<m {
                var sum = 0.0
                for l in 0..<m { sum += rB[i * m + l] * rA[j * m + l] }
                core[i * m + j] = sum
            }
        }
        let (u, sigma, v) = svd(core, size: m)
        let order = sigma.indices.sorted { sigma[$0] > sigma[$1] }.prefix(rank)
        var a = [Float](repeating: 0, count: rank * inputs)
        var b = [Float](repeating: 0, count: outputs * rank)
        for (slot, index) in order.enumerated() {
            // A row: (Q_A · v_index)ᵀ; B column: Q_B · u_index · σ.
            for x in 0..<inputs {
                var sum = 0.0
                for l in 0..<m { sum += qA[l][x] * v[l * m + index] }
                a[slot * inputs + x] = Float(sum)
            }
            for y in 0..<outputs {
                var sum = 0.0
                for l in 0..<m { sum += qB[l][y] * u[l * m + index] }
                b[y * rank + slot] = Float(sum * sigma[index])
            }
        }
        return (a, b)
    }

    /// Thin QR of the matrix whose columns are `columns` (modified Gram–Schmidt, re-orthogonalised once): Q's columns
    /// (a dependent column's is zero) and R (m × m, row-major), with columns[j] = Σ_l Q[l] · R[l][j].
    static func qr(_ columns: [[Double]]) -> (q: [[Double]], r: [Double]) {
        let m = columns.count
        var q: [[Double]] = []
        var r = [Double](repeating: 0, count: m * m)
        for (j, column) in columns.enumerated() {
            var w = column
            let scale = max(column.reduce(0) { $0 + $1 * $1 }.squareRoot(), .leastNormalMagnitude)
            for _ in 0..<2 {
                for (l, basis) in q.enumerated() {
                    var dot = 0.0
                    for i in w.indices { dot += basis[i] * w[i] }
                    r[l * m + j] += dot
                    for i in w.indices { w[i] -= dot * basis[i] }
                }
            }
            let norm = w.reduce(0) { $0 + $1 * $1 }.squareRoot()
            if norm > 1e-12 * scale {
                r[j * m + j] = norm
                q.append(w.map { $0 / norm })
            } else {
                q.append([Double](repeating: 0, count: w.count))
            }
        }
        return (q, r)
    }

    /// SVD of a square `size × size` row-major matrix by one-sided Jacobi rotations: U and V (row-major, columns the
    /// singular vectors) and the singular values (unsorted).
    static func svd(_ matrix: [Double], size n: Int) -> (u: [Double], sigma: [Double], v: [Double]) {
        var work = matrix
        var v = [Double](repeating: 0, count: n * n)
        for i in 0..<n { v[i * n + i] = 1 }
        for _ in 0..<60 {
            var rotated = false
            for p in 0..<n {
                for q in (p + 1)..<n {
                    var alpha = 0.0, beta = 0.0, gamma = 0.0
                    for i in 0..<n {
                        let x = work[i * n + p], y = work[i * n + q]
                        alpha += x * x
                        beta += y * y
                        gamma += x * y
                    }
                    guard abs(gamma) > 1e-15 * (alpha * beta).squareRoot() else { continue }
                    rotated = true
                    let zeta = (beta - alpha) / (2 * gamma)
                    let t = (zeta >= 0 ? 1 : -1) / (abs(zeta) + (1 + zeta * zeta).squareRoot())
                    let c = 1 / (1 + t * t).squareRoot(), s = c * t
                    for i in 0..<n {
                        let x = work[i * n + p], y = work[i * n + q]
                        work[i * n + p] = c * x - s * y
                        work[i * n + q] = s * x + c * y
                        let vx = v[i * n + p], vy = v[i * n + q]
                        v[i * n + p] = c * vx - s * vy
                        v[i * n + q] = s * vx + c * vy
                    }
                }
            }
            if !rotated { break }
        }
        var sigma = [Double](repeating: 0, count: n)
        var u = [Double](repeating: 0, count: n * n)
        for j in 0..<n {
            let norm = (0..<n).reduce(0.0) { $0 + work[$1 * n + j] * work[$1 * n + j] }.squareRoot()
            sigma[j] = norm
            if norm > 0 { for i in 0..<n { u[i * n + j] = work[i * n + j] / norm } }
        }
        return (u, sigma, v)
    }
}
