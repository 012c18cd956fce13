/* events: holds the table of what clients and servers report to the pool
 * (see events.h). Set once at start-up; never changes while connections
 * exist. */
#include "events.h"

const struct events *events_table;

void events_init(const struct events *table)
{
	events_table = table;
}
