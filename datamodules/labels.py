"""What a label means: the tasks, their classes, and the one "does not count" sentinel.

The one home of these names. The generator labels with them, the collate pads with ``IGNORE_INDEX``, the
losses and metrics skip it, the task modes, the search space and the CLI take the task list from here.
Nothing heavy is imported, so the results tables (pandas only) can use it too.
"""

from __future__ import annotations

from dataclasses import dataclass

IGNORE_INDEX = 255  # padding and ink that degradation made invisible: never a training target, never scored


@dataclass(frozen=True)
class TaskSpec:
    """One segmentation task.

    Attributes:
        name: the task's name on the command line and in the tables.
        task_id: part of the generator's seed, ``SeedSequence([seed, task_id, index])``; never reused.
        classes: class index -> human name; index 0 is background (grid and text included).
    """

    name: str
    task_id: int
    classes: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def curve_classes(self) -> tuple[int, ...]:
        """The foreground classes, averaged into the ``_fg`` metrics."""
        return tuple(range(1, len(self.classes)))


TASK_SPECS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec("binary", 0, ("background", "curve")),
        TaskSpec("multiclass", 1, ("background", "curve A (solid, dark)", "curve B (dashed, dotted or lighter)")),
    )
}
TASKS: tuple[str, ...] = tuple(TASK_SPECS)
MAX_CLASSES = max(spec.num_classes for spec in TASK_SPECS.values())


def task_spec(task: str) -> TaskSpec:
    """The spec of a task name; ValueError names the tasks there are."""
    try:
        return TASK_SPECS[task]
    except KeyError:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}") from None


def check_task(task: str) -> str:
    """``task`` if it names a task, else ValueError."""
    return task_spec(task).name
