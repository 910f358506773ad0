from hypothesis import given
from hypothesis import strategies as st

from scoreboard.domain.ranking import Standing, rank_all, sort_key


def test_higher_score_first() -> None:
    ranked = rank_all([Standing("a", "A", 5, 1), Standing("b", "B", 9, 2)])
    assert [e.user_id for e in ranked] == ["b", "a"]
    assert [e.rank for e in ranked] == [1, 2]


def test_equal_scores_earlier_reach_first() -> None:
    ranked = rank_all([Standing("a", "A", 5, 200), Standing("b", "B", 5, 100)])
    assert [e.user_id for e in ranked] == ["b", "a"]


def test_equal_score_and_time_user_id_byte_order() -> None:
    ranked = rank_all([Standing(u, u, 5, 100) for u in ["b", "a", "B", "_"]])
    assert [e.user_id for e in ranked] == ["B", "_", "a", "b"]


@given(
    st.lists(
        st.tuples(
            st.text(min_size=1, max_size=6),
            st.integers(-3, 3),
            st.integers(0, 3),
        ),
        unique_by=lambda t: t[0],
        max_size=30,
    )
)
def test_ranks_unique_and_ordered(rows: list[tuple[str, int, int]]) -> None:
    ranked = rank_all([Standing(u, u, s, t) for u, s, t in rows])
    assert [e.rank for e in ranked] == list(range(1, len(rows) + 1))
    keys = {u: sort_key(s, t, u) for u, s, t in rows}
    assert [keys[e.user_id] for e in ranked] == sorted(keys.values())
