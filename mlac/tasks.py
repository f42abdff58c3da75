"""Task description: which text field is read and which columns are the beneficial/harmful labels."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlac.errors import ConfigError

TEXT_FIELDS = ("text", "text_with_first_sentence")


@dataclass(frozen=True)
class TaskSpec:
    """Describes the two tasks of an audit on one dataset.

    ``text_field`` picks the column the model reads: ``text`` is the pronoun-scrubbed biography without
    its first sentence (default, PROTOCOL.md), ``text_with_first_sentence`` the whole scrubbed bio.
    Labels are integer columns; the name tuples give their human-readable meaning.
    """

    text_field: str = "text"
    beneficial_label: str = "profession"
    harmful_label: str = "gender"
    beneficial_names: tuple[str, ...] = field(default_factory=tuple)
    harmful_names: tuple[str, ...] = ("female", "male")

    def __post_init__(self) -> None:
        if self.text_field not in TEXT_FIELDS:
            raise ConfigError(f"text_field must be one of {TEXT_FIELDS}, got {self.text_field!r}")
        if self.beneficial_label == self.harmful_label:
            raise ConfigError("beneficial_label and harmful_label must name different columns")

    def label_column(self, task: str) -> str:
        """Column of the labels of ``task`` ('harmful' or 'beneficial')."""
        if task == "harmful":
            return self.harmful_label
        if task == "beneficial":
            return self.beneficial_label
        raise ConfigError(f"task must be 'harmful' or 'beneficial', got {task!r}")

    def num_labels(self, task: str) -> int:
        """Number of classes of ``task``, from the label names."""
        names = self.harmful_names if task == "harmful" else self.beneficial_names
        if task not in ("harmful", "beneficial"):
            raise ConfigError(f"task must be 'harmful' or 'beneficial', got {task!r}")
        if not names:
            raise ConfigError(f"no label names known for the {task} task")
        return len(names)
