"""lmms-eval sample logs built by hand, shared by the lmms-eval import tests and the generated-input
import tests."""


def mmbench_records():
    """Two questions in lmms-eval's mmbench_en_dev format, each asked in every circular rotation (pass k
    shows the options shifted k places and has index g + k·1e6). Question 7 (right: "dog") is answered
    right in every pass; question 9 (right: "red") is wrong in its second pass."""
    questions = [
        (7, "What is shown?", None, ["cat", "dog", "bird"], ["B", "The answer is A", "C"]),
        (9, "Which color?", "Look closely.", ["red", "blue"], ["A", "A"]),
    ]
    records, doc_id = [], 0
    for g, question, hint, options, answers in questions:
        right = options[1] if g == 7 else options[0]
        for k in range(len(options)):
            rotated = options[k:] + options[:k]
            letter = "ABCD"[rotated.index(right)]
            fields = {
                "index": g + k * 1_000_000,
                "question": question,
                "answer": letter,
                "hint": hint or "nan",
            }
            fields.update(
                prediction=answers[k], source="x", split="dev", category="cat1", **{"L2-category": "l2"}
            )
            fields.update({c: (rotated[i] if i < len(options) else "nan") for i, c in enumerate("ABCDE")})
            rec = {
                "doc_id": doc_id,
                "target": letter,
                "input": f"{question} ...",
                "filtered_resps": [answers[k]],
            }
            rec.update(
                gpt_eval_score=fields, submission=fields, doc_hash="h", prompt_hash="p", target_hash="t"
            )
            records.append(rec)
            doc_id += 1
    return records
