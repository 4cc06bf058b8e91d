/*
 * onsale live page: the events with live stock bars; an event's page with its
 * description, benefits and a hold -> confirm / cancel with a countdown; a buyer's orders,
 * live; sign up / in / out; the organizer's events, editor and sales; the admin's stats.
 *
 * Data flow: REST for documents (events, orders, sales), the /ws feed for changes. Feed
 * frames only update plain state and mark keys dirty; the DOM is written once per
 * animation frame for the dirty keys (no layout reads anywhere), so a rush of hundreds of
 * frames a second costs a JSON.parse each and one small DOM pass per frame.
 *
 * Security: server data reaches the DOM through textContent and DOM properties only.
 */

import { startAccount } from "./account.js";
import { startEvent } from "./event.js";
import { startFeed } from "./feed.js";
import { startList } from "./list.js";
import { startOrders } from "./orders.js";
import { startOrganizer } from "./organizer.js";
import { route } from "./router.js";
import { startSales } from "./sales.js";
import { startStock } from "./stock.js";

startStock();
startList();
startEvent();
startOrders();
startSales();
startOrganizer();
startAccount();
window.addEventListener("hashchange", route);
startFeed();
route();
