package dev.pdserve.core.coordination;

/**
 * What a node's engine did while draining one role.
 *
 * @param drained true when it holds no work of that role any more
 * @param migrated sequences moved to other nodes
 * @param finishedLocally sequences or prefills that ended here
 * @param detail what is left when not drained (for the refusal message), else empty
 */
public record DrainReport(boolean drained, int migrated, int finishedLocally, String detail) {}
