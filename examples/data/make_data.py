"""Generate the small template datasets shipped beside this script (CC0, made for kerasnlp4su).

    python examples/data/make_data.py

* `ner.jsonl`: Chinese sentences with character-offset entity spans
  (PER / LOC / ORG), for GlobalPointer NER.
* `relations.jsonl`: sentences with (subject, predicate, object) triples and
  their character offsets, for GPLinker-style relation extraction.
* `sentiment.tsv` and `sts_pairs.tsv` are hand-written/template data too.
"""

import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
PEOPLE = ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨帆", "赵磊", "黄敏", "周杰", "吴昊", "孙丽", "马超"]
PLACES = ["北京", "上海", "广州", "深圳", "杭州", "南京", "成都", "武汉", "西安", "重庆", "天津", "苏州"]
ORGS = ["清华大学", "北京大学", "华为公司", "腾讯公司", "人民日报", "中国银行", "阿里巴巴", "复旦大学",
        "小米公司", "新华社", "浙江大学", "中山大学"]
NER_TEMPLATES = [
    "{PER}昨天去了{LOC}。", "{PER}在{ORG}工作。", "{ORG}位于{LOC}。", "{PER}和{PER2}在{LOC}见面。",
    "来自{LOC}的{PER}加入了{ORG}。", "{ORG}的{PER}今天访问{LOC}。", "我在{LOC}遇到了{PER}。",
    "{PER}毕业于{ORG}，现在住在{LOC}。", "听说{PER}要离开{ORG}了。", "{LOC}和{LOC2}的天气都很好。",
]
RE_TEMPLATES = [
    ("{S}出生于{O}。", "出生地", "PER", "LOC"),
    ("{S}毕业于{O}。", "毕业院校", "PER", "ORG"),
    ("{S}的总部在{O}。", "总部地点", "ORG", "LOC"),
    ("{S}是{O}的员工。", "工作单位", "PER", "ORG"),
    ("{S}生于{O}，后来在{O2}工作。", None, "PER", "LOC"),
]
POOLS = {"PER": PEOPLE, "LOC": PLACES, "ORG": ORGS}


def fill(template, values):
    """Fill `{KEY}` slots left to right, recording character offsets of each value."""
    text, spans, i = "", [], 0
    while i < len(template):
        if template[i] == "{":
            j = template.index("}", i)
            key = template[i + 1:j]
            value = values[key]
            spans.append((key, len(text), len(text) + len(value) - 1, value))
            text += value
            i = j + 1
        else:
            text += template[i]
            i += 1
    return text, spans


def make_ner(rng, n=300):
    rows = []
    for _ in range(n):
        template = rng.choice(NER_TEMPLATES)
        values = {"PER": rng.choice(PEOPLE), "LOC": rng.choice(PLACES), "ORG": rng.choice(ORGS)}
        values["PER2"] = rng.choice([p for p in PEOPLE if p != values["PER"]])
        values["LOC2"] = rng.choice([p for p in PLACES if p != values["LOC"]])
        text, spans = fill(template, values)
        entities = [{"start": s, "end": e, "type": k.rstrip("2"), "text": v} for k, s, e, v in spans]
        rows.append({"text": text, "entities": entities})
    return rows


def make_relations(rng, n=300):
    rows = []
    for _ in range(n):
        template, predicate, s_type, o_type = rng.choice(RE_TEMPLATES)
        values = {"S": rng.choice(POOLS[s_type]), "O": rng.choice(POOLS[o_type]),
                  "O2": rng.choice(ORGS)}
        text, spans = fill(template, values)
        by_key = {k: (s, e, v) for k, s, e, v in spans}
        triples = []
        if predicate is None:  # two relations in one sentence
            triples.append((by_key["S"], "出生地", by_key["O"]))
            triples.append((by_key["S"], "工作单位", by_key["O2"]))
        else:
            triples.append((by_key["S"], predicate, by_key["O"]))
        rows.append({"text": text, "spo": [
            {"subject": s[2], "subject_span": [s[0], s[1]], "predicate": p,
             "object": o[2], "object_span": [o[0], o[1]]} for s, p, o in triples]})
    return rows


def main():
    rng = random.Random(2026)
    for name, rows in (("ner.jsonl", make_ner(rng)), ("relations.jsonl", make_relations(rng))):
        with open(os.path.join(HERE, name), "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(name, len(rows))


if __name__ == "__main__":
    main()
