"""Evaluation of generated text: what BLEU (and chrF) reward and miss, measured with sacrebleu on real sentences (the
bundled tweets as references) against candidates made from them by rule: a copy, words dropped, a truncation,
sentences swapped, synonyms, shuffled words, another tweet."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from forgeml.playbook import Evidence, entry

# a word-level paraphrase: each word (lowercase) -> a word or phrase of the same meaning in these tweets
SYNONYMS = {
    "great": "terrific", "big": "large", "very": "really", "really": "truly", "people": "folks", "country": "nation",
    "many": "numerous", "bad": "poor", "good": "fine", "amazing": "incredible", "incredible": "amazing",
    "massive": "huge", "total": "complete", "totally": "completely", "just": "simply", "media": "press",
    "money": "cash", "said": "stated", "major": "significant", "speech": "address", "smart": "clever",
    "strong": "powerful", "weak": "feeble", "happy": "glad", "beautiful": "lovely", "dishonest": "deceitful",
    "stupid": "foolish", "terrible": "awful", "horrible": "dreadful", "fantastic": "superb", "nice": "pleasant",
    "poll": "survey", "polls": "surveys", "crooked": "corrupt", "fake": "phony", "help": "assist", "soon": "shortly",
    "begin": "start", "honor": "privilege", "wonderful": "marvelous", "tonight": "this evening", "should": "ought to",
    "can't": "cannot", "don't": "do not", "doesn't": "does not", "didn't": "did not", "won't": "will not",
    "isn't": "is not", "it's": "it is", "i'm": "I am", "we're": "we are", "they're": "they are", "that's": "that is",
}
DROP = 3  # words dropped from each reference


def _case_like(word: str, new: str) -> str:
    """``new`` written in ``word``'s case (ALL CAPS, Capitalized or as it is)."""
    if word.isupper() and len(word) > 1:
        return new.upper()
    return new[0].upper() + new[1:] if word[:1].isupper() else new


def synonyms(text: str) -> str:
    """Every word of SYNONYMS replaced (punctuation and case kept): the same meaning in other words."""
    def swap(m):
        word = m.group(0)
        new = SYNONYMS.get(word.lower())
        return _case_like(word, new) if new else word

    return re.sub(r"[A-Za-z']+", swap, text)


def sentences(text: str) -> list[str]:
    return re.split(r"(?<=[.!?])\s+", text.strip())


def candidates(refs: list[str], seed: int = 0) -> dict[str, list[str]]:
    """Candidate 'outputs' made from each reference by rule, by kind (one candidate per reference each)."""
    rng = np.random.default_rng(seed)
    dropped, shuffled = [], []
    for ref in refs:
        words = ref.split()
        gone = set(rng.choice(len(words), DROP, replace=False).tolist())
        dropped.append(" ".join(w for i, w in enumerate(words) if i not in gone))
        shuffled.append(" ".join(words[i] for i in rng.permutation(len(words))))
    swapped = [" ".join(sentences(r)[1:] + sentences(r)[:1]) for r in refs]  # the first sentence moved to the end
    return {"copy": list(refs), f"{DROP} words dropped": dropped,
            "first half of the words": [" ".join(r.split()[:len(r.split()) // 2]) for r in refs],
            "first sentence moved to the end": swapped, "synonyms": [synonyms(r) for r in refs],
            "synonyms + first sentence moved to the end": [synonyms(s) for s in swapped],
            "words shuffled": shuffled, "another tweet": refs[1:] + refs[:1]}


MEANING = {"copy": "yes", f"{DROP} words dropped": "partly", "first half of the words": "partly",
           "first sentence moved to the end": "yes", "synonyms": "yes", "synonyms + first sentence moved to the end": "yes",
           "words shuffled": "no", "another tweet": "no"}


def references(fast: bool) -> list[str]:
    """Tweets from bundled:tweets with at least two sentences, 12+ words, no links, handles or hashtags, and at least
    two words SYNONYMS can replace, in their order: a fixed sample of 150 with --fast, all of them otherwise."""
    from forgeml.data.bundled import load_bundled

    df, _ = load_bundled("tweets")
    text = df["text"].astype(str).drop_duplicates()
    text = text[~text.str.contains(r"http|@|#|&amp;|\n")]
    ok = [t for t in text if len(sentences(t)) >= 2 and len(t.split()) >= 12
          and sum(w.lower() in SYNONYMS for w in re.findall(r"[A-Za-z']+", t)) >= 2]
    if not fast:
        return ok
    return [ok[i] for i in np.sort(np.random.default_rng(0).choice(len(ok), 150, replace=False))]


def scores(hyps: list[str], refs: list[str], **bleu_args) -> dict:
    """Corpus BLEU (its 1- and 4-gram precisions, brevity penalty, signature), mean sentence BLEU and corpus chrF."""
    from sacrebleu.metrics import BLEU, CHRF

    bleu = BLEU(**bleu_args)
    chrf = CHRF(lowercase=bleu_args.get("lowercase", False))
    corpus = bleu.corpus_score(hyps, [refs])
    sentence = BLEU(effective_order=True, **bleu_args)
    per = [sentence.sentence_score(h, [r]).score for h, r in zip(hyps, refs)]
    return {"bleu": corpus.score, "p1": corpus.precisions[0], "p4": corpus.precisions[3], "bp": corpus.bp,
            "sentence": float(np.mean(per)), "per_sentence": per, "chrf": chrf.corpus_score(hyps, [refs]).score,
            "signature": str(bleu.get_signature()), "sentence_signature": str(sentence.get_signature())}


def _plot(path: Path, labels: list[str], bleu: list[float], chrf: list[float]) -> str:
    from forgeml.evaluate.plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    y = np.arange(len(labels))
    ax.barh(y - 0.2, bleu, 0.4, label="corpus BLEU", color="#2b6cb0")
    ax.barh(y + 0.2, chrf, 0.4, label="corpus chrF", color="#c05621")
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 105)
    ax.set_xlabel("score (0-100)")
    ax.set_title("BLEU and chrF of rule-made candidates against tweets", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, Path(path), tight_bbox=True)
    return Path(path).name


PARAPHRASE, DROPPED, SHUFFLED = "synonyms + first sentence moved to the end", f"{DROP} words dropped", "words shuffled"
TOKENIZATION = [  # (label, candidate kind, sacrebleu BLEU arguments): the same candidates under another signature
    ("copy, lowercased", "lowercased", {}), ("copy, lowercased", "lowercased", {"lowercase": True}),
    (DROPPED, DROPPED, {"tokenize": "none"}), (DROPPED, DROPPED, {"tokenize": "char"})]


def short(signature: str) -> str:
    """'nrefs:1|case:mixed|eff:no|tok:13a|...' -> 'tok:13a case:mixed'."""
    parts = dict(p.split(":", 1) for p in signature.split("|"))
    return f"tok:{parts['tok']} case:{parts['case']}"


@entry(
    "bleu", "evaluation",
    question={"en": "How do we score generated text (translations, summaries, replies) with BLEU, and what does the "
                    "number miss?",
              "zh": "怎样用 BLEU 给生成的文本（翻译、摘要、回复）打分？这个数字漏掉了什么？"},
    answer={"en": "BLEU counts how many of the candidate's 1- to 4-word sequences (n-grams) also occur in the "
                  "reference, takes the geometric mean of the four precisions and multiplies it by a brevity penalty "
                  "for candidates shorter than the reference. So it rewards surface overlap: a copy scores 100, "
                  "dropping words costs little, and it cannot tell meaning apart from wording: a paraphrase in other "
                  "words loses n-grams and scores low, while the same words in a shuffled, meaningless order keep "
                  "every unigram and lose only the longer n-grams; order beyond 4 words (moving a whole sentence) is "
                  "barely seen. Use it as a corpus-level metric over many sentences with several references when you "
                  "can; a single sentence's BLEU is noisy. chrF (character n-gram F-score) credits partial word "
                  "matches: prefer it for morphologically rich languages, for short outputs and per sentence. BLEU "
                  "numbers are comparable only under the same tokenization, casing and smoothing: compute them with "
                  "sacrebleu and report its signature, and check meaning with people or a learned metric.",
            "zh": "BLEU 统计候选文本的 1 到 4 词序列（n-gram）有多少也出现在参考文本里，取这四个精确率的几何平均，再对比参考"
                  "更短的候选乘上简短惩罚。所以它奖励的是字面重合：原样复制得 100 分，删掉几个词扣分不多；它分不清意思和措辞："
                  "换一种说法的释义丢了 n-gram，得分就低，而同样的词打乱成毫无意义的顺序，每个单字都还在，只丢掉较长的 "
                  "n-gram；超过 4 个词的语序（把整句挪个位置）它几乎看不见。把它当作语料级指标，在许多句子上计算，尽量用多个"
                  "参考；单个句子的 BLEU 噪声很大。chrF（字符 n-gram 的 F 值）会给部分匹配的词记分：形态变化丰富的语言、短输出"
                  "和逐句评分时更适合用它。只有分词、大小写和平滑方式相同，BLEU 数字才能相互比较：用 sacrebleu 计算并报告它的"
                  "签名，意思对不对还要靠人工或学习得到的指标来检查。"},
    claim={"en": "Scored with sacrebleu against real tweets, shuffling each tweet's words keeps BLEU's unigram "
                 "precision at 100% yet cuts corpus BLEU by more than half, and a rewrite that keeps the meaning "
                 "(synonyms, first sentence moved to the end) scores lower corpus BLEU than a copy with three words "
                 "dropped.",
           "zh": "用 sacrebleu 以真实推文为参考打分：把每条推文的词打乱后，BLEU 的单字精确率仍为 100%，语料级 BLEU 却降到"
                 "一半以下；保留原意的改写（换同义词、把第一句移到末尾）的语料级 BLEU 低于删掉三个词的副本。"},
    caveats={"en": "References are tweets (one reference each), not translations, and the candidates are made by rule "
                   "(a small hand-written synonym list, including expanded contractions) rather than by a system; "
                   "'meaning kept' is by construction, not judged by people. The tweets kept have two or more "
                   "sentences, 12+ words and at least two replaceable words (about 1,300; 150 with --fast). sacrebleu's "
                   "default BLEU (13a tokenizer, mixed case, exp smoothing) and chrF (character 6-grams, beta 2).",
             "zh": "参考文本是推文（每条一个参考），不是译文；候选文本按规则生成（一份手写的小同义词表，包括展开缩写），而不是"
                   "由系统生成；“意思保留”是构造出来的，不是人工评判的。只保留含两句以上、至少 12 个词、至少两个可替换词的"
                   "推文（约 1,300 条；--fast 时 150 条）。使用 sacrebleu 默认的 BLEU（13a 分词、区分大小写、exp 平滑）"
                   "和 chrF（字符 6-gram，beta 2）。"},
    needs=("sacrebleu", "text"),
)
def bleu(fast: bool, out: Path) -> Evidence:
    refs = references(fast)
    made = candidates(refs)
    made["lowercased"] = [r.lower() for r in refs]
    rows, measured = [], {}
    for kind, hyps in made.items():
        if kind in MEANING:
            measured[kind] = scores(hyps, refs)
    for label, kind, args in TOKENIZATION:
        measured[(label, tuple(args.items()))] = scores(made[kind], refs, **args)
    for key, s in measured.items():
        label = key if isinstance(key, str) else key[0]
        rows.append([label, MEANING.get(label, "yes"), short(s["signature"]), round(s["bleu"], 2), round(s["p1"], 2),
                     round(s["p4"], 2), round(s["bp"], 4), round(s["sentence"], 2), round(s["chrf"], 2)])
    copy, dropped, para, shuffled = (measured[k] for k in ("copy", DROPPED, PARAPHRASE, SHUFFLED))
    supported = bool(shuffled["p1"] == 100 and shuffled["bleu"] < copy["bleu"] / 2 and para["bleu"] < dropped["bleu"])
    lower = sum(p < d for p, d in zip(para["per_sentence"], dropped["per_sentence"])) / len(refs)
    kinds = list(MEANING)
    plots = [_plot(out / "bleu.png", kinds, [measured[k]["bleu"] for k in kinds], [measured[k]["chrf"] for k in kinds])]
    case_mixed, case_lc = (measured[("copy, lowercased", a)]["bleu"] for a in ((), (("lowercase", True),)))
    syn = measured["synonyms"]
    tok_none, tok_char = (measured[(DROPPED, (("tokenize", t),))]["bleu"] for t in ("none", "char"))
    return Evidence(
        ["candidate (one per tweet)", "meaning kept", "BLEU signature", "corpus BLEU", "1-gram precision",
         "4-gram precision", "brevity penalty", "mean sentence BLEU", "corpus chrF"], rows, supported,
        {"en": f"On {len(refs)} tweets (sacrebleu {copy['signature']}): the shuffled words keep {shuffled['p1']:.0f}% "
               f"unigram precision but score BLEU {shuffled['bleu']:.1f} (4-gram precision {shuffled['p4']:.1f}%), "
               f"while chrF still gives them {shuffled['chrf']:.1f}. Dropping {DROP} words scores {dropped['bleu']:.1f}; "
               f"the meaning-keeping rewrite {para['bleu']:.1f} (synonyms alone {syn['bleu']:.1f}, moving the first "
               f"sentence alone {measured['first sentence moved to the end']['bleu']:.1f}); per tweet, the rewrite's "
               f"sentence BLEU is below the dropped copy's for {100 * lower:.0f}% of them. The first half of the words "
               f"keeps every n-gram precision and loses by the brevity penalty alone ({measured['first half of the words']['bp']:.3f}). "
               f"The signature matters: the lowercased copy scores {case_mixed:.1f} with case:mixed and "
               f"{case_lc:.1f} with case:lc, and the copy with {DROP} words dropped {dropped['bleu']:.1f} with "
               f"tok:13a, {tok_none:.1f} with tok:none and {tok_char:.1f} with tok:char.",
         "zh": f"在 {len(refs)} 条推文上（sacrebleu {copy['signature']}）：打乱的词单字精确率仍为 {shuffled['p1']:.0f}%，"
               f"BLEU 却只有 {shuffled['bleu']:.1f}（4-gram 精确率 {shuffled['p4']:.1f}%），而 chrF 仍给它 "
               f"{shuffled['chrf']:.1f}。删掉 {DROP} 个词得 {dropped['bleu']:.1f}；保留原意的改写得 {para['bleu']:.1f}"
               f"（只换同义词 {syn['bleu']:.1f}，只把第一句移到末尾 {measured['first sentence moved to the end']['bleu']:.1f}）；"
               f"逐条看，改写的句子 BLEU 低于删词副本的推文占 {100 * lower:.0f}%。只保留前一半词时各阶 n-gram 精确率不变，"
               f"只因简短惩罚（{measured['first half of the words']['bp']:.3f}）而失分。签名很重要：小写化的副本在 case:mixed "
               f"下得 {case_mixed:.1f}，在 case:lc 下得 {case_lc:.1f}；删掉 {DROP} 个词的副本在 tok:13a、tok:none 和 "
               f"tok:char 下分别得 {dropped['bleu']:.1f}、{tok_none:.1f} 和 {tok_char:.1f}。"},
        plots)
