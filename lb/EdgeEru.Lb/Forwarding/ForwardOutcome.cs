namespace EdgeEru.Lb.Forwarding;

/// <summary>
/// How forwarding a request to one destination ended: what the forward loop decides on, and what the client side answers.
/// </summary>
internal enum ForwardOutcome
{
    /// <summary>The workload's answer reached the client.</summary>
    Done,

    /// <summary>No live workload to send to: the LB answers 503.</summary>
    NoDestination,

    /// <summary>No answer: no connection, or it broke before anything came back. Ejected, another tried; else 502.</summary>
    Unreachable,

    /// <summary>No answer within the backend's timeout. Ejected, another tried; else 504.</summary>
    TimedOut,

    /// <summary>The workload's answer was malformed, and nothing of it reached the client: 502.</summary>
    BadResponse,

    /// <summary>The client left before its answer was whole.</summary>
    ClientGone,

    /// <summary>The answer broke after it started: the client's connection is cut, so it cannot pass for a whole one.</summary>
    BodyBroken,

    /// <summary>Another failure, which the forwarder that met it (YARP) has answered itself.</summary>
    Answered,
}
