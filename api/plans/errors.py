"""The day-plan domain's errors: each a translated 4xx naming the field."""

from __future__ import annotations

from api.core.errors import Conflict, InvalidInput, NotFound


class TeamNotFound(NotFound):
    """No such team in the caller's enterprise."""

    code = "team_not_found"
    message = "No such team in your enterprise."


class TeamNameTaken(Conflict):
    """Another team of the enterprise has this name."""

    code = "team_name_taken"
    message = "Your enterprise already has a team with this name."


class UnknownTeamWorker(InvalidInput):
    """A worker id that is not a worker of the team's enterprise."""

    status_code = 422
    code = "unknown_worker"
    message = "Worker {worker_id} is not a worker of your enterprise ({field})."


class EnterpriseRequired(InvalidInput):
    """An admin asked for the default team without saying whose."""

    status_code = 422
    code = "enterprise_required"
    message = "Name the enterprise (enterprise_id) or a team (team_id)."


class DayOutOfRange(InvalidInput):
    """The day is in the past or beyond the booking horizon."""

    status_code = 422
    code = "day_out_of_range"
    message = "The day (day) must be between today and {days} days ahead."


class PlanNotFound(NotFound):
    """No plan has been made for this team and day yet."""

    code = "plan_not_found"
    message = "There is no plan for this team and day yet."


class VisitNotInPlan(NotFound):
    """The order is not a visit of this team's day."""

    code = "visit_not_in_plan"
    message = "Order {order_id} is not a visit of this team's day (order_id)."


class WorkerNotInPlan(InvalidInput):
    """The worker is not in the team or has no shift that day."""

    status_code = 422
    code = "worker_not_in_plan"
    message = "Worker {worker_id} is not in this team or not working that day (worker_id)."


class PinOutsideWindow(InvalidInput):
    """A pinned start outside the visit's booked window."""

    status_code = 422
    code = "pin_outside_window"
    message = (
        "The pinned start (start) must lie within the booked window {window_start} – {window_end}."
    )


class PinEmpty(InvalidInput):
    """A pin that names neither a worker nor a start."""

    status_code = 422
    code = "pin_empty"
    message = "Pin the visit to a worker (worker_id), a start (start) or both."


class VisitFixed(Conflict):
    """The visit is under way or done: nothing about it can change."""

    code = "visit_fixed"
    message = "Order {order_id} is under way or done; it can no longer be pinned."


class BadDisruption(Conflict):
    """The disruption does not fit the plan (e.g. an overrun of a visit not started)."""

    code = "bad_disruption"
    message = "This disruption does not fit the plan: {reason}"


class PlanNotApplicable(Conflict):
    """Writing the plan's assignments hit a reservation it cannot move."""

    code = "plan_not_applicable"
    message = (
        "The plan cannot be applied: order {order_id} cannot move to worker {worker_id} "
        "(it overlaps another of their bookings)."
    )


class PlanInputInvalid(Conflict):
    """The day's bookings do not fit the team's shifts (the core refused the input)."""

    code = "plan_input_invalid"
    message = "The day cannot be planned: {reason}"
