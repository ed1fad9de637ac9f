#!/usr/bin/env python3
"""Router measurement study: cheap input router text -> one of six adapters.

Run:  OMP_NUM_THREADS=1 /work/main/.venv-peer/bin/python Benchmarks/router-study/study.py
Writes RESULTS.md (and results.json, features cache) next to this file.

Protocols: A = fit on fit.jsonl, score eval.jsonl; B = fit on eval.jsonl, score fit.jsonl;
CV = stratified 5-fold CV on the union (300). The LR/SVM C is always chosen by an inner stratified
5-fold CV on the training portion only (max accuracy, tie -> lower CV log-loss / hinge loss).

Cost model: per request  layers_run/6 * tokens_used/tokens_total  (layer 0 lookup = 0);
for a cascade that escalates, the expensive stage continues the same pass (all tokens) so an
escalated request costs 1.0 if the cheap stage used all tokens, else cheap_cost + 1.0.
"""
import json, os, sys, time, math
os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np
import torch

torch.set_num_threads(1)
torch.set_num_interop_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = "/work/main/models/all-MiniLM-L6-v2"
DATA = "/work/shared/reference/routing"
LABELS = ["lights", "climate", "security", "machine", "medical", "chat"]
LAYERS = [0, 1, 2, 3, 6]
NS = [8, 16, None]  # None = all tokens
CGRID = [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0]


def load(name):
    rows = [json.loads(l) for l in open(os.path.join(DATA, name)) if l.strip()]
    return [r["text"] for r in rows], np.array([LABELS.index(r["adapter"]) for r in rows])


# ----------------------------------------------------------------------------- features
def extract(texts):
    cache = os.path.join(HERE, "features_cache.npz")
    if os.path.exists(cache):
        z = np.load(cache, allow_pickle=True)
        if list(z["texts"]) == texts:
            return {k: z[k] for k in z.files}
    from transformers import AutoModel, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(MODEL)
    model = AutoModel.from_pretrained(MODEL).eval()
    out = {"texts": np.array(texts, dtype=object)}
    ids_full = [tok(t)["input_ids"] for t in texts]
    out["ntok"] = np.array([len(i) for i in ids_full])
    # wordpiece ids (without CLS/SEP) for bag-of-wordpieces
    out["wp"] = np.array([np.array(i[1:-1]) for i in ids_full], dtype=object)
    with torch.no_grad():
        for N in NS:
            feats = {k: [] for k in range(7)}
            for t in texts:  # batch 1, exactly what the router would run
                # N = wordpieces kept, [CLS]/[SEP] added on top (max_length N+2), as in the
                # "first 8 wordpieces" baseline (0.944 reproduces with max_length=10)
                enc = tok(t, return_tensors="pt", truncation=N is not None,
                          max_length=N + 2 if N is not None else 512)
                hs = model(**enc, output_hidden_states=True).hidden_states
                m = enc["attention_mask"][0].float()
                for k in range(7):
                    h = hs[k][0]
                    feats[k].append(((h * m[:, None]).sum(0) / m.sum()).numpy())
            for k in range(7):
                out[f"h{k}_N{N or 'all'}"] = np.stack(feats[k]).astype(np.float64)
    W = model.embeddings.word_embeddings.weight.detach().numpy().astype(np.float64)
    out["wordemb"] = np.stack([W[i].mean(0) for i in ids_full])  # raw word embeddings incl. CLS/SEP, no pos/LN
    np.savez(cache, **out)
    return out


def l2n(X):
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def bow_matrix(wp_lists, vocab_cols):
    X = np.zeros((len(wp_lists), len(vocab_cols)))
    for i, ids in enumerate(wp_lists):
        for t in ids:
            X[i, vocab_cols[int(t)]] += 1.0
    return X


# ----------------------------------------------------------------------------- classifiers
class Pipe:
    """Feature transform fitted on the training rows only (standardisation, idf)."""

    def __init__(self, spec):
        self.spec = spec  # dict: std(bool), tfidf(bool) ...

    def fit(self, X):
        if self.spec.get("std"):
            self.mu = X.mean(0)
            self.sd = X.std(0) + 1e-6
        return self

    def __call__(self, X):
        if self.spec.get("std"):
            X = (X - self.mu) / self.sd
        return X


def centroid_fit(X, y, C=None):
    Cm = np.stack([X[y == c].mean(0) for c in range(len(LABELS))])
    return l2n(Cm)


def centroid_scores(M, X):
    return l2n(X) @ M.T  # cosine


def lr_fit(X, y, C, kind="lr", iters=300):
    """kind=lr: multinomial softmax LR, objective C*sum_i CE_i + 0.5*||W||^2 (intercept unpenalised,
    = sklearn LogisticRegression(C, multinomial, lbfgs)).  kind=svm: one-vs-rest squared hinge,
    C*sum_i sum_k max(0, 1 - y_ik f_ik)^2 + 0.5*||W||^2 (LinearSVC-style, intercept unpenalised)."""
    Xt = torch.tensor(X, dtype=torch.float64)
    yt = torch.tensor(y, dtype=torch.long)
    K = len(LABELS)
    W = torch.zeros(X.shape[1], K, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(K, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], lr=1, max_iter=iters, tolerance_grad=1e-6,
                            tolerance_change=1e-10, history_size=20, line_search_fn="strong_wolfe")
    Y = torch.full((len(y), K), -1.0, dtype=torch.float64)
    Y[torch.arange(len(y)), yt] = 1.0

    def closure():
        opt.zero_grad()
        f = Xt @ W + b
        if kind == "lr":
            loss = C * torch.nn.functional.cross_entropy(f, yt, reduction="sum")
        else:
            loss = C * torch.clamp(1 - Y * f, min=0).pow(2).sum()
        loss = loss + 0.5 * (W * W).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return (W.detach().numpy(), b.detach().numpy())


def lr_scores(Wb, X):
    return X @ Wb[0] + Wb[1]


def softmax(S):
    S = S - S.max(1, keepdims=True)
    E = np.exp(S)
    return E / E.sum(1, keepdims=True)


def strat_folds(y, k, seed):
    rng = np.random.RandomState(seed)
    fold = np.zeros(len(y), dtype=int)
    for c in np.unique(y):
        idx = np.where(y == c)[0]
        rng.shuffle(idx)
        fold[idx] = np.arange(len(idx)) % k
    return fold


class Model:
    """clf in {centroid, lr, svm}; feature builder fb(train_idx) -> (fn mapping idx->X)."""

    def __init__(self, clf):
        self.clf = clf

    def fit(self, X, y, C=None):
        if self.clf == "centroid":
            self.M = centroid_fit(X, y)
        else:
            self.C = C
            self.M = lr_fit(X, y, C, kind=self.clf)
        return self

    def scores(self, X):
        return centroid_scores(self.M, X) if self.clf == "centroid" else lr_scores(self.M, X)

    def proba(self, X):
        S = self.scores(X)
        if self.clf == "centroid":
            return softmax(S / 0.05)  # temperature only for a rough confidence; not used for accuracy
        return softmax(S)


def choose_C(getX, y_tr, tr_idx, clf):
    """inner 5-fold CV on tr_idx (global indices); getX(train_idx, idx) returns features for idx
    with transforms fitted on train_idx."""
    folds = strat_folds(y_tr, 5, seed=1)
    best = None
    for C in CGRID:
        correct, loss = 0, 0.0
        for f in range(5):
            a, b_ = tr_idx[folds != f], tr_idx[folds == f]
            ya, yb = y_tr[folds != f], y_tr[folds == f]
            m = Model(clf).fit(getX(a, a), ya, C)
            S = m.scores(getX(a, b_))
            correct += (S.argmax(1) == yb).sum()
            if clf == "lr":
                P = softmax(S)
                loss += -np.log(P[np.arange(len(yb)), yb] + 1e-12).sum()
            else:
                Yb = -np.ones_like(S); Yb[np.arange(len(yb)), yb] = 1
                loss += np.clip(1 - Yb * S, 0, None).sum()
        key = (-correct, loss)
        if best is None or key < best[0]:
            best = (key, C)
    return best[1]


# ----------------------------------------------------------------------------- main study
def main():
    t0 = time.time()
    tf, yf = load("fit.jsonl")
    te, ye = load("eval.jsonl")
    texts = tf + te
    y = np.concatenate([yf, ye])
    nf = len(tf)
    F = extract(texts)
    ntok = F["ntok"].astype(float)
    print(f"features ready {time.time()-t0:.1f}s; tokens/request mean {ntok.mean():.2f} "
          f"min {ntok.min():.0f} max {ntok.max():.0f}", flush=True)

    # bag of wordpieces: columns = wordpieces occurring anywhere (unseen-in-train columns get weight 0)
    vocab = sorted({int(t) for ids in F["wp"] for t in ids})
    vcol = {t: i for i, t in enumerate(vocab)}
    BOW = bow_matrix(F["wp"], vcol)

    idx_A = (np.arange(nf), np.arange(nf, len(y)))
    idx_B = (np.arange(nf, len(y)), np.arange(nf))
    cvf = strat_folds(y, 5, seed=0)
    idx_CV = [(np.where(cvf != f)[0], np.where(cvf == f)[0]) for f in range(5)]

    # feature specs: name -> (getX(train_idx, idx), cost array per request, meta)
    specs = {}

    def dense(key, norm, std):
        base = F[key]
        base = l2n(base) if norm else base

        def getX(tr, idx):
            X = base[idx]
            if std:
                mu, sd = base[tr].mean(0), base[tr].std(0) + 1e-6
                X = (X - mu) / sd
            return X
        return getX

    def lexical(mode):
        def getX(tr, idx):
            X = BOW[idx].copy()
            if mode == "binary":
                return (X > 0).astype(float)
            df = (BOW[tr] > 0).sum(0)
            idf = np.log((1 + len(tr)) / (1 + df)) + 1.0
            return l2n(X * idf)
        return getX

    for k in LAYERS:
        for N in NS:
            key = f"h{k}_N{N or 'all'}"
            frac = np.minimum(N + 2, ntok) / ntok if N else np.ones_like(ntok)
            cost = (k / 6.0) * frac
            for norm in (True, False):
                for std in ((False, True) if norm else (False,)):
                    name = f"L{k} N={N or 'all'} {'l2' if norm else 'raw'}{'+std' if std else ''}"
                    specs[name] = (dense(key, norm, std), cost,
                                   dict(layer=k, N=N or "all", norm=norm, std=std, cost_trunc=N is not None))
    zero = np.zeros_like(ntok)
    specs["wordemb l2"] = (dense("wordemb", True, False), zero, dict(layer="W", N="all", cost_trunc=False))
    specs["wordemb l2+std"] = (dense("wordemb", True, True), zero, dict(layer="W", N="all", cost_trunc=False))
    specs["BoW binary"] = (lexical("binary"), zero, dict(layer="lex", N="all", cost_trunc=False))
    specs["BoW tf-idf"] = (lexical("tfidf"), zero, dict(layer="lex", N="all", cost_trunc=False))
    for alpha in (0.5, 1.0, 2.0):
        for lexmode in ("tfidf", "binary"):
            g0 = dense("h0_Nall", True, False)
            gl = lexical(lexmode)

            def getX(tr, idx, g0=g0, gl=gl, alpha=alpha):
                return np.hstack([g0(tr, idx), alpha * gl(tr, idx)])
            specs[f"[L0 l2 ; {alpha}*BoW {'tf-idf' if lexmode == 'tfidf' else 'binary'}]"] = (getX, zero, dict(layer="0+lex", N="all", cost_trunc=False))
    # concatenation with layer-1 (cheap, 1/6)
    g1 = dense("h1_Nall", True, False)
    gl = lexical("tfidf")
    specs["[L1 l2 ; 1*BoW tf-idf]"] = (lambda tr, idx: np.hstack([g1(tr, idx), gl(tr, idx)]),
                                       np.full_like(ntok, 1 / 6), dict(layer="1+lex", N="all", cost_trunc=False))

    def svm_wanted(name):
        return name in ("L0 N=all l2", "L1 N=all l2", "L6 N=all l2", "BoW tf-idf", "[L0 l2 ; 1.0*BoW tf-idf]")

    def run(name, clf, keep_scores=False):
        getX, cost, meta = specs[name]
        res = {}
        for pname, splits in (("A", [idx_A]), ("B", [idx_B]), ("CV", idx_CV)):
            correct, n, Cs = 0, 0, []
            S_all = np.zeros((len(y), len(LABELS)))
            tested = []
            for tr, ts in splits:
                C = None if clf == "centroid" else choose_C(getX, y[tr], tr, clf)
                m = Model(clf).fit(getX(tr, tr), y[tr], C)
                S = m.scores(getX(tr, ts))
                S_all[ts] = S
                tested.append(ts)
                correct += (S.argmax(1) == y[ts]).sum(); n += len(ts); Cs.append(C)
            ts_all = np.concatenate(tested)
            res[pname] = dict(acc=correct / n, C=Cs, cost=float(cost[ts_all].mean()))
            if keep_scores:
                res[pname]["scores"] = S_all
                res[pname]["idx"] = ts_all
        return res

    expensives = ["L6 N=all l2", "L6 N=all l2+std"]
    cheap_list = ["wordemb l2", "L0 N=all l2", "L0 N=all l2+std", "L0 N=all raw", "BoW tf-idf", "BoW binary",
                  "[L0 l2 ; 1.0*BoW tf-idf]", "[L0 l2 ; 2.0*BoW tf-idf]", "[L0 l2 ; 1.0*BoW binary]",
                  "[L0 l2 ; 0.5*BoW binary]",
                  "L1 N=all l2", "L1 N=all l2+std", "L1 N=8 l2", "L2 N=all l2", "[L1 l2 ; 1*BoW tf-idf]"]
    needed = set(cheap_list) | set(expensives)
    # per-(feature, clf) cache so an interrupted run resumes; rows may be seeded from a previous
    # run's log with --seed-from-log LOG (accuracies rounded to 3 decimals; scores are recomputed
    # for every spec the cascades need).  A fresh run (no cache) computes everything.
    import pickle
    cpath = os.path.join(HERE, "run_cache.pkl")
    cache = pickle.load(open(cpath, "rb")) if os.path.exists(cpath) else {}
    if "--seed-from-log" in sys.argv:
        import re
        for line in open(sys.argv[sys.argv.index("--seed-from-log") + 1]):
            m = re.match(r"(.{32}) (centroid|lr|svm)\s+A=(\S+) B=(\S+) CV=(\S+) cost=(\S+) C=([^,]+),([^,]+),\[([^\]]*)\]", line)
            if not m:
                continue
            name = m.group(1).strip().replace("tfidf]", "tf-idf]")
            f = lambda v: None if v == "None" else float(v)
            row = dict(feature=name, clf=m.group(2), acc_A=float(m.group(3)), acc_B=float(m.group(4)),
                       acc_CV=float(m.group(5)), cost=float(m.group(6)), cost_all=float(m.group(6)),
                       C_A=f(m.group(7)), C_B=f(m.group(8)), C_CV=[f(v) for v in m.group(9).split(", ")])
            cache.setdefault((name, row["clf"]), dict(row=row, r=None))
    results = []
    score_store = {}
    for name in specs:
        for clf in ("centroid", "lr", "svm"):
            if clf == "svm" and not svm_wanted(name):
                continue
            ts = time.time()
            hit = cache.get((name, clf))
            if hit is not None and (hit["r"] is not None or not (clf == "lr" and name in needed)):
                results.append(hit["row"])
                if hit["r"] is not None and clf == "lr":
                    score_store[name] = hit["r"]
                continue
            r = run(name, clf, keep_scores=(clf == "lr"))
            if clf == "lr":
                score_store[name] = r
            row = dict(feature=name, clf=clf, **{f"acc_{p}": r[p]["acc"] for p in r},
                       cost=r["A"]["cost"], cost_all=float(specs[name][1].mean()),
                       C_A=r["A"]["C"][0], C_B=r["B"]["C"][0], C_CV=r["CV"]["C"])
            results.append(row)
            cache[(name, clf)] = dict(row=row, r=r if clf == "lr" else None)
            pickle.dump(cache, open(cpath, "wb"))
            print(f"{name:32s} {clf:8s} A={row['acc_A']:.3f} B={row['acc_B']:.3f} CV={row['acc_CV']:.3f} "
                  f"cost={row['cost_all']:.3f} C={row['C_A']},{row['C_B']},{row['C_CV']} "
                  f"[{time.time()-ts:.1f}s, total {time.time()-t0:.0f}s]", flush=True)

    # ------------------------------------------------------------------ cascades
    taus = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.99]
    cascades = []
    for cheap, expensive in [(c, e) for e in expensives for c in cheap_list]:
        _, ccost, cmeta = specs[cheap]
        for tau in taus:
            row = dict(cheap=cheap, expensive=expensive, tau=tau)
            for p in ("A", "B", "CV"):
                rc, re_ = score_store[cheap][p], score_store[expensive][p]
                idx = rc["idx"]
                Pc = softmax(rc["scores"][idx]); Pe = softmax(re_["scores"][idx])
                conf = Pc.max(1)
                esc = conf < tau
                pred = np.where(esc, Pe.argmax(1), Pc.argmax(1))
                c = ccost[idx].copy()
                if cmeta["cost_trunc"]:
                    c = c + esc * 1.0
                else:
                    c = np.where(esc, 1.0, c)
                row[f"acc_{p}"] = float((pred == y[idx]).mean())
                row[f"esc_{p}"] = float(esc.mean())
                row[f"cost_{p}"] = float(c.mean())
            cascades.append(row)

    # ------------------------------------------------------------------ calibration
    calib = {}
    for name in ["L0 N=all l2", "L0 N=all l2+std", "L0 N=all raw", "[L0 l2 ; 1.0*BoW tf-idf]"] + expensives:
        calib[name] = {}
        for p in ("A", "B", "CV"):
            r = score_store[name][p]
            idx = r["idx"]
            P = softmax(r["scores"][idx])
            srt = np.sort(P, 1)
            top, margin = srt[:, -1], srt[:, -1] - srt[:, -2]
            ok = P.argmax(1) == y[idx]
            bins = [0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0001]
            rel = []
            for lo, hi in zip(bins[:-1], bins[1:]):
                s = (top >= lo) & (top < hi)
                rel.append((lo, hi, int(s.sum()), float(ok[s].mean()) if s.any() else None,
                            float(top[s].mean()) if s.any() else None))
            ece = sum(n_ * abs(a - c_) for _, _, n_, a, c_ in rel if n_) / len(top)
            calib[name][p] = dict(
                top_q=np.quantile(top, [0.05, 0.1, 0.25, 0.5, 0.75]).round(3).tolist(),
                top_correct_q=np.quantile(top[ok], [0.05, 0.25, 0.5]).round(3).tolist(),
                top_wrong=sorted(top[~ok].round(3).tolist()),
                margin_q=np.quantile(margin, [0.05, 0.1, 0.25, 0.5]).round(3).tolist(),
                margin_wrong=sorted(margin[~ok].round(3).tolist()),
                rel=rel, ece=ece,
                wrong=[(texts[i], LABELS[y[i]], LABELS[int(P[j].argmax())], round(float(top[j]), 3))
                       for j, i in enumerate(idx) if not ok[j]])

    json.dump(dict(results=results, cascades=cascades, calib=calib,
                   ntok=dict(mean=float(ntok.mean()), min=float(ntok.min()), max=float(ntok.max()))),
              open(os.path.join(HERE, "results.json"), "w"), indent=1, default=float)
    print(f"done {time.time()-t0:.0f}s")


if __name__ == "__main__" and "--report" not in sys.argv and "--fixed-c" not in sys.argv:
    main()


# ----------------------------------------------------------------------------- report
def report():
    R = json.load(open(os.path.join(HERE, "results.json")))
    L = []
    L.append("# Router study: lightweight input router (6 adapters)\n")
    L.append("Generated by `study.py` (then `study.py --report`). all-MiniLM-L6-v2, mean pooling over the attention "
             "mask (CLS/SEP included). A = fit 120 → eval 180; B = fit 180 (eval) → 120 (fit); CV = stratified "
             "5-fold on the union of 300 (seed 0). C (LR/SVM) chosen per training set by inner stratified 5-fold CV "
             f"over {CGRID}. N = wordpieces kept *plus* [CLS]/[SEP] (tokenizer max_length=N+2); "
             f"requests average {R['ntok']['mean']:.2f} tokens incl. specials (min {R['ntok']['min']:.0f}, "
             f"max {R['ntok']['max']:.0f}). Cost = layers/6 × tokens used/tokens (mean over requests; "
             "layer 0 = 0). `wordemb` = raw word-embedding rows (no position, no LayerNorm); `L0` = embedding "
             "output after LayerNorm (hidden_states[0]). mean = (A+B+CV)/3.\n")
    sh = os.path.join(HERE, "summary_head.md")
    if os.path.exists(sh):
        L.append(open(sh).read())
    fc = os.path.join(HERE, "fixed_c.json")
    if os.path.exists(fc):
        L.append("## Cascade L0 → L6 with fixed C (`study.py --fixed-c`): acc / escalation rate (= cost) per protocol\n")
        L.append("| cheap (C) | full (C) | full acc A/B/CV | cheap acc A/B/CV | τ=0.5 A; B; CV | τ=0.6 | τ=0.7 | τ=0.8 | τ=0.9 |")
        L.append("|---|---|---|---|---|---|---|---|---|")
        for r in json.load(open(fc)):
            cells = []
            for t in (0.5, 0.6, 0.7, 0.8, 0.9):
                cells.append("; ".join(f"{r[f't{t}_{p}'][0]:.3f}/{r[f't{t}_{p}'][1]:.2f}" for p in ("A", "B", "CV")))
            L.append(f"| {r['cheap']} ({r['Cc']:g}) | {r['expensive']} ({r['Ce']:g}) | "
                     f"{r['full_A']:.3f}/{r['full_B']:.3f}/{r['full_CV']:.3f} | "
                     f"{r['cheap_A']:.3f}/{r['cheap_B']:.3f}/{r['cheap_CV']:.3f} | " + " | ".join(cells) + " |")
        L.append("")
    L.append("## Single-stage accuracy and cost\n")
    L.append("| features | clf | A | B | CV | mean | cost | C (A / B / CV folds) |")
    L.append("|---|---|---|---|---|---|---|---|")
    for r in R["results"]:
        mean = (r["acc_A"] + r["acc_B"] + r["acc_CV"]) / 3
        Cs = "-" if r["clf"] == "centroid" else f"{r['C_A']:g} / {r['C_B']:g} / " + ",".join(f"{c:g}" for c in r["C_CV"])
        L.append(f"| {r['feature']} | {r['clf']} | {r['acc_A']:.3f} | {r['acc_B']:.3f} | {r['acc_CV']:.3f} | "
                 f"{mean:.3f} | {r['cost_all']:.3f} | {Cs} |")
    L.append("\n## Cascades (cheap LR answers if top-1 softmax prob ≥ τ, else escalate to the L6 N=all LR)\n")
    L.append("Escalation continues the same pass (cost 1.0 per escalated request) unless the cheap stage was "
             "truncated (then cheap cost + 1.0).\n")
    L.append("| cheap stage | expensive | τ | acc A | acc B | acc CV | esc A | esc B | esc CV | cost A | cost B | cost CV |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in R["cascades"]:
        L.append(f"| {r['cheap']} | {r['expensive']} | {r['tau']} | {r['acc_A']:.3f} | {r['acc_B']:.3f} | {r['acc_CV']:.3f} | "
                 f"{r['esc_A']:.3f} | {r['esc_B']:.3f} | {r['esc_CV']:.3f} | {r['cost_A']:.3f} | "
                 f"{r['cost_B']:.3f} | {r['cost_CV']:.3f} |")
    L.append("\n## Confidence / calibration (LR softmax top-1 probability)\n")
    for name, d in R["calib"].items():
        L.append(f"### {name}\n")
        L.append("| protocol | ECE | top-1 q05/q10/q25/q50/q75 | correct q05/q25/q50 | wrong top-1 values | "
                 "margin q05/q10/q25/q50 |")
        L.append("|---|---|---|---|---|---|")
        for p, c in d.items():
            L.append(f"| {p} | {c['ece']:.3f} | {c['top_q']} | {c['top_correct_q']} | {c['top_wrong']} | {c['margin_q']} |")
        L.append("\nReliability (CV): " + "; ".join(
            f"[{lo:g},{min(hi,1):g}) n={n} acc={a:.2f} conf={cf:.2f}" if n else f"[{lo:g},{min(hi,1):g}) n=0"
            for lo, hi, n, a, cf in d["CV"]["rel"]) + "\n")
        L.append("Errors (A): " + "; ".join(f"\"{t}\" {g}→{p_} ({c_})" for t, g, p_, c_ in d["A"]["wrong"]) + "\n")
    open(os.path.join(HERE, "RESULTS.md"), "w").write("\n".join(L) + "\n")


if __name__ == "__main__" and "--report" in sys.argv:
    report()


# ----------------------------------------------------------------------------- fixed-C sweep of the cascade
def fixed_c_sweep():
    """Cascade L0 (cheap) -> L6 (full) with *fixed* C values (no inner CV), for a deployable constant."""
    tf, yf = load("fit.jsonl"); te, ye = load("eval.jsonl")
    y = np.concatenate([yf, ye]); nf = len(tf)
    F = extract(tf + te)
    cvf = strat_folds(y, 5, seed=0)
    prots = {"A": [(np.arange(nf), np.arange(nf, len(y)))], "B": [(np.arange(nf, len(y)), np.arange(nf))],
             "CV": [(np.where(cvf != f)[0], np.where(cvf == f)[0]) for f in range(5)]}

    def feats(key, std, tr, idx):
        X = l2n(F[key])
        if std:
            return (X[idx] - X[tr].mean(0)) / (X[tr].std(0) + 1e-6)
        return X[idx]
    out = []
    for cheap_std, exp_std in ((True, True), (False, False)):
        for Cc in (0.01, 0.1, 1.0):
            for Ce in (0.01, 0.1, 1.0, 10.0):
                if not cheap_std:
                    Cc2, Ce2 = Cc * 1e3, Ce * 1e2
                else:
                    Cc2, Ce2 = Cc, Ce
                row = dict(cheap=f"L0 N=all l2{'+std' if cheap_std else ''}", Cc=Cc2,
                           expensive=f"L6 N=all l2{'+std' if exp_std else ''}", Ce=Ce2)
                for p, splits in prots.items():
                    Pc_all, Pe_all, yy = [], [], []
                    for tr, ts in splits:
                        mc = Model("lr").fit(feats("h0_Nall", cheap_std, tr, tr), y[tr], Cc2)
                        me = Model("lr").fit(feats("h6_Nall", exp_std, tr, tr), y[tr], Ce2)
                        Pc_all.append(mc.proba(feats("h0_Nall", cheap_std, tr, ts)))
                        Pe_all.append(me.proba(feats("h6_Nall", exp_std, tr, ts)))
                        yy.append(y[ts])
                    Pc, Pe, yy = np.vstack(Pc_all), np.vstack(Pe_all), np.concatenate(yy)
                    row[f"full_{p}"] = float((Pe.argmax(1) == yy).mean())
                    row[f"cheap_{p}"] = float((Pc.argmax(1) == yy).mean())
                    for tau in (0.5, 0.6, 0.7, 0.8, 0.9):
                        esc = Pc.max(1) < tau
                        pred = np.where(esc, Pe.argmax(1), Pc.argmax(1))
                        row[f"t{tau}_{p}"] = (float((pred == yy).mean()), float(esc.mean()))
                out.append(row)
                print(row, flush=True)
    json.dump(out, open(os.path.join(HERE, "fixed_c.json"), "w"), indent=1)


if __name__ == "__main__" and "--fixed-c" in sys.argv:
    fixed_c_sweep()
