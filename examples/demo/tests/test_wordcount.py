from wordcount import top_words, words


def test_words_splits_on_non_letters() -> None:
    assert words("a cat, a hat!") == ["a", "cat", "a", "hat"]


def test_top_words_orders_by_count_then_name() -> None:
    assert top_words("b a b c a b", n=2) == [("b", 3), ("a", 2)]


def test_top_words_empty() -> None:
    assert top_words("") == []
